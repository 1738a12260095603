import Foundation
import Logging
import Postgres
import RampartAudit
import RampartProto

/// The append-only audit log in PostgreSQL (`audit.entries`, rule P9): services append a
/// record after each audited call; the `audit` service lists them. The database refuses UPDATE,
/// DELETE and TRUNCATE of the table (triggers that fire even in replica mode), see docs/audit.md.
public struct AuditLog: AuditSink {
    /// One stored entry: the record plus what the database assigned.
    public struct Entry: Sendable, Hashable {
        /// Increasing id assigned by the database; pages continue after it.
        public var id: UInt64
        /// When the database recorded it, ms since the epoch (UTC).
        public var timeUnixMs: Int64
        /// What was recorded.
        public var record: AuditRecord

        /// The entry as sent on the wire.
        public var proto: Rampart_Audit_V1_AuditEntry {
            var entry = Rampart_Audit_V1_AuditEntry()
            entry.id = id
            entry.timeUnixMs = timeUnixMs
            entry.callerKey = record.callerKey
            entry.callerName = record.callerName
            entry.callerRole = record.callerRole
            entry.service = record.service
            entry.method = record.method
            entry.subject = record.subject
            entry.outcome = record.outcome
            entry.message = record.message
            entry.details = record.details
            return entry
        }
    }

    /// One answer of `list`: the entries, oldest first, and whether more match after the last.
    public struct Page: Sendable, Hashable {
        /// The entries, by increasing id.
        public var entries: [Entry]
        /// True when more entries match after the last one: ask again with `afterId` = its id.
        public var more: Bool
    }

    private let pool: PostgresPool
    private let logger: Logger
    private let retryDelay: Duration

    /// A log writing and reading through `pool`; a failed append is retried once after `retryDelay`.
    public init(pool: PostgresPool, logger: Logger, retryDelay: Duration = .milliseconds(200)) {
        self.pool = pool
        self.logger = logger
        self.retryDelay = retryDelay
    }

    // MARK: Schema

    /// Versioned migrations of schema `audit`. Applied migrations never change; add new ones.
    public static let migrations: [Migration] = [
        Migration(
            version: 1, name: "append-only entries",
            sql: """
                CREATE SCHEMA IF NOT EXISTS audit;
                CREATE TABLE audit.entries (
                    id bigserial PRIMARY KEY,
                    at timestamptz NOT NULL DEFAULT clock_timestamp(),
                    caller_key text NOT NULL DEFAULT '',
                    caller_name text NOT NULL DEFAULT '',
                    caller_role text NOT NULL DEFAULT '',
                    service text NOT NULL,
                    method text NOT NULL,
                    subject text NOT NULL DEFAULT '',
                    outcome int NOT NULL CHECK (outcome >= 0),
                    message text NOT NULL DEFAULT '',
                    details jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object')
                );
                CREATE INDEX entries_at ON audit.entries (at);
                CREATE INDEX entries_caller_name ON audit.entries (caller_name, id);
                CREATE INDEX entries_caller_key ON audit.entries (caller_key text_pattern_ops, id);

                -- Append-only: every UPDATE, DELETE and TRUNCATE statement fails, even one that matches no
                -- row, even from a superuser, even with session_replication_role = replica (ENABLE ALWAYS).
                CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'audit.entries is append-only: % is not allowed', TG_OP
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'audit entries are never changed or removed';
                END
                $$;
                CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON audit.entries
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
                CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON audit.entries
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
                ALTER TABLE audit.entries ENABLE ALWAYS TRIGGER entries_append_only;
                ALTER TABLE audit.entries ENABLE ALWAYS TRIGGER entries_no_truncate;
                -- Nobody is granted changes, not even the owning role the services connect as (a
                -- superuser is not bound by privileges, the triggers above still stop it).
                REVOKE UPDATE, DELETE, TRUNCATE ON audit.entries FROM PUBLIC, CURRENT_USER;
                """),
    ]

    /// Creates or updates schema `audit`. Every process that writes or reads the log runs it at
    /// start: idempotent, and safe when many start at once (`Migrator` serialises them).
    public static func migrate(connection: PostgresConnection, logger: Logger) throws {
        try Migrator.migrate(schema: "audit", migrations: migrations, connection: connection, logger: logger)
    }

    // MARK: Writing

    /// Stores `record` (made `storable` first), in its own statement on `connection`; use it inside
    /// a transaction to audit a state change atomically with it. Returns the new entry's id.
    @discardableResult
    public static func insert(_ record: AuditRecord, on connection: PostgresConnection) throws -> UInt64 {
        let record = record.storable
        let details = String(decoding: try detailsEncoder.encode(record.details), as: UTF8.self)
        let rows = try connection.query(
            """
            INSERT INTO audit.entries
                (caller_key, caller_name, caller_role, service, method, subject, outcome, message, details)
            VALUES (\(record.callerKey), \(record.callerName), \(record.callerRole), \(record.service), \
            \(record.method), \(record.subject), \(record.outcome.rawValue), \(record.message), \(details)::jsonb)
            RETURNING id
            """)
        return UInt64(try rows.first?.decode("id", as: Int64.self) ?? 0)
    }

    /// Appends `record`; never throws. A failure is logged at error level with every field of the
    /// record and retried once; when the retry fails too the record is logged as lost. The write
    /// runs in a task of its own, so cancelling the caller (a shutdown) does not cancel it.
    public func append(_ record: AuditRecord) async {
        let task = Task { [self] in await write(record.storable) }
        await task.value
    }

    private func write(_ record: AuditRecord) async {
        for attempt in 1...2 {
            do {
                try await pool.withConnection { connection in _ = try Self.insert(record, on: connection) }
                if attempt > 1 { logger.notice("audit record written on the second attempt") }
                return
            } catch {
                var metadata = record.logMetadata
                metadata["error"] = "\(error)"
                if attempt == 1 {
                    logger.error("audit record not written; retrying once", metadata: metadata)
                    try? await Task.sleep(for: retryDelay)
                } else {
                    logger.error(
                        "audit record lost: the database did not take it; it is only in this log", metadata: metadata)
                }
            }
        }
    }

    // MARK: Reading

    /// The entries matching `filter`, oldest first, at most `filter.limit`. Throws `AuditFilterError`
    /// for an unusable filter and `PostgresError` when the database fails.
    public func list(_ filter: AuditFilter) async throws -> Page {
        try filter.validate()
        return try await pool.withConnection { connection in try Self.list(filter, on: connection) }
    }

    /// `list` on a given connection.
    public static func list(_ filter: AuditFilter, on connection: PostgresConnection) throws -> Page {
        try filter.validate()
        func date(_ unixMs: Int64) -> Date? {
            unixMs == 0 ? nil : Date(timeIntervalSince1970: Double(unixMs) / 1000)
        }
        // Unset filters are bound as NULL / "" / false and fold away when PostgreSQL plans the statement
        // (an unnamed statement is planned with its values), so the indexes on time and caller are used.
        let rows = try connection.query(
            """
            SELECT id, floor(extract(epoch FROM at) * 1000)::bigint AS time_ms, caller_key, caller_name, caller_role,
                   service, method, subject, outcome, message, details::text AS details
            FROM audit.entries
            WHERE id > \(Int64(filter.afterId))
              AND (\(date(filter.sinceUnixMs))::timestamptz IS NULL OR at >= \(date(filter.sinceUnixMs))::timestamptz)
              AND (\(date(filter.untilUnixMs))::timestamptz IS NULL OR at < \(date(filter.untilUnixMs))::timestamptz)
              AND (\(filter.caller)::text = '' OR caller_name = \(filter.caller)::text
                   OR caller_key = \(filter.caller)::text
                   OR (length(\(filter.caller)::text) >= 8 AND starts_with(caller_key, \(filter.caller)::text)))
              AND starts_with(method, \(filter.methodPrefix)::text)
              AND (NOT \(filter.refusedOnly)::boolean OR outcome <> 0)
            ORDER BY id
            LIMIT \(filter.limit + 1)
            """)
        var entries: [Entry] = []
        entries.reserveCapacity(min(rows.count, filter.limit))
        for row in rows.prefix(filter.limit) {
            let detailsText: String = try row.decode("details")
            let details = (try? JSONDecoder().decode([String: String].self, from: Data(detailsText.utf8))) ?? [:]
            let record = AuditRecord(
                callerKey: try row.decode("caller_key"), callerName: try row.decode("caller_name"),
                callerRole: try row.decode("caller_role"), service: try row.decode("service"),
                method: try row.decode("method"), subject: try row.decode("subject"),
                outcome: Rampart_Bus_V1_StatusCode(rawValue: try row.decode("outcome", as: Int.self)) ?? .unknown,
                message: try row.decode("message"), details: details)
            entries.append(
                Entry(
                    id: UInt64(try row.decode("id", as: Int64.self)), timeUnixMs: try row.decode("time_ms"),
                    record: record))
        }
        return Page(entries: entries, more: rows.count > filter.limit)
    }

    private static var detailsEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
