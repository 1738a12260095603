import Foundation
import Postgres
import RampartBasics
import RampartProto

/// A hook as the delivery loop needs it.
public struct HookRecord: Sendable, Equatable {
    public var id: UUID
    public var url: String
    public var topics: [String]
    public var secret: String
    public var lastSeq: UInt64
}

/// The `notify.hooks` table: what the handlers and the delivery loop read and write.
enum HookStore {
    static let columns = "id, url, topics, secret, created_at, last_seq, last_delivered_at, failures, last_error"

    static func insert(
        id: UUID, url: String, topics: [String], secret: String, createdBy: String, lastSeq: UInt64, now: Date,
        on connection: PostgresConnection
    ) throws -> Rampart_Notify_V1_Hook {
        let rows = try connection.query(
            """
            INSERT INTO notify.hooks (id, url, topics, secret, created_at, created_by, last_seq)
            VALUES (\(id), \(url), \(topics), \(secret), \(now), \(createdBy), \(Int64(clamping: lastSeq)))
            RETURNING \(unsafeRaw: columns)
            """)
        guard let row = rows.first else { throw PostgresError(kind: .query, message: "INSERT returned no row") }
        return try hook(from: row)
    }

    static func list(on connection: PostgresConnection) throws -> [Rampart_Notify_V1_Hook] {
        try connection.query("SELECT \(unsafeRaw: columns) FROM notify.hooks ORDER BY created_at, id").map(hook(from:))
    }

    static func delete(_ id: UUID, on connection: PostgresConnection) throws -> Bool {
        try connection.execute("DELETE FROM notify.hooks WHERE id = \(id)") > 0
    }

    static func record(_ id: UUID, on connection: PostgresConnection) throws -> HookRecord? {
        try connection.query("SELECT id, url, topics, secret, last_seq FROM notify.hooks WHERE id = \(id)")
            .first.map(record(from:))
    }

    static func ids(on connection: PostgresConnection) throws -> [UUID] {
        try connection.query("SELECT id FROM notify.hooks ORDER BY created_at, id").map { try $0.decode("id") }
    }

    /// Takes or renews `owner`'s lease on hook `id` for `seconds`; the hook as stored, or nil when it is
    /// gone or another instance holds it.
    static func claim(_ id: UUID, owner: String, seconds: Int, on connection: PostgresConnection) throws -> HookRecord? {
        try connection.query(
            """
            UPDATE notify.hooks SET owner = \(owner), lease_until = now() + make_interval(secs => \(seconds))
            WHERE id = \(id) AND (owner = \(owner) OR lease_until < now())
            RETURNING id, url, topics, secret, last_seq
            """
        ).first.map(record(from:))
    }

    /// Gives up every lease of `owner` (a graceful stop), so another instance takes its hooks at once.
    static func release(owner: String, on connection: PostgresConnection) throws {
        _ = try connection.execute("UPDATE notify.hooks SET lease_until = 'epoch' WHERE owner = \(owner)")
    }

    /// Hook `id` handled everything through `seq`; `delivered`: the event `seq` was POSTed and answered 2xx.
    /// Only forward, and only while `owner` holds the hook. False when it no longer does (or the hook is gone).
    static func advance(
        _ id: UUID, to seq: UInt64, delivered: Bool, owner: String, now: Date, on connection: PostgresConnection
    ) throws -> Bool {
        let seq = Int64(clamping: seq)
        if delivered {
            return try connection.execute(
                """
                UPDATE notify.hooks SET last_seq = \(seq), last_delivered_at = \(now), failures = 0, last_error = ''
                WHERE id = \(id) AND owner = \(owner) AND last_seq < \(seq)
                """) > 0
        }
        return try connection.execute(
            """
            UPDATE notify.hooks SET last_seq = \(seq)
            WHERE id = \(id) AND owner = \(owner) AND last_seq < \(seq)
            """) > 0
    }

    /// An attempt to deliver to hook `id` failed for the `failures`-th time in a row.
    static func failed(_ id: UUID, failures: Int, error: String, on connection: PostgresConnection) throws {
        _ = try connection.execute(
            "UPDATE notify.hooks SET failures = \(failures), last_error = \(String(error.prefix(500))) WHERE id = \(id)")
    }

    static func record(from row: PostgresRow) throws -> HookRecord {
        HookRecord(
            id: try row.decode("id"), url: try row.decode("url"), topics: try row.decode("topics"),
            secret: try row.decode("secret"), lastSeq: UInt64(try row.decode("last_seq", as: Int64.self)))
    }

    static func hook(from row: PostgresRow) throws -> Rampart_Notify_V1_Hook {
        var hook = Rampart_Notify_V1_Hook()
        hook.id = try row.decode("id", as: UUID.self).uuidString.lowercased()
        hook.url = URLMasking.masked(try row.decode("url"))
        hook.topics = try row.decode("topics")
        hook.signed = !(try row.decode("secret", as: String.self)).isEmpty
        hook.createdUnixMs = try row.decode("created_at", as: Date.self).unixMillis
        hook.lastSeq = UInt64(try row.decode("last_seq", as: Int64.self))
        hook.lastDeliveredUnixMs = try row.decodeIfPresent("last_delivered_at", as: Date.self)?.unixMillis ?? 0
        hook.failures = UInt32(try row.decode("failures", as: Int32.self))
        hook.lastError = try row.decode("last_error")
        return hook
    }
}
