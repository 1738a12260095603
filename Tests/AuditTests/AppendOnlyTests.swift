import Foundation
import Logging
import Postgres
import RampartAPI
import RampartAudit
import RampartDatabase
import RampartTesting
import Testing

/// P9: the audit log is append-only, enforced by the database itself; and its migration
/// can run from every service at start.
@Suite("P9: audit.entries is append-only in the database; migrations are safe to repeat")
struct AppendOnlyTests {
    static let record = AuditRecord(
        callerName: "alice", service: "backup", method: BackupAPI.cancelJob.name, subject: "job-9",
        outcome: .ok)

    /// Expects `sql` to fail with the append-only refusal and leaves the rows as they were.
    func expectRefused(_ sql: SQL, on connection: PostgresConnection, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try connection.execute(sql)
            Issue.record("the database accepted \(sql.text)", sourceLocation: sourceLocation)
        } catch let error as PostgresError {
            #expect(error.message.contains("append-only"), "\(error)", sourceLocation: sourceLocation)
            #expect(error.sqlState == "42501", "\(error.debugDescription)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("P9: audit is append-only: UPDATE, DELETE and TRUNCATE are refused by the database, even for a superuser")
    func appendOnly() async throws {
        let database = try AuditDatabase.make()
        defer { Task { await database.pool.close() } }
        await database.log.append(Self.record)
        await database.log.append(Self.record)
        let before = try await database.all()
        #expect(before.count == 2)

        let connection = try database.connect()
        // The tests connect as the server's superuser: privileges do not bind it, the triggers do.
        #expect(try connection.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").first?
            .decode("rolsuper", as: Bool.self) == true)
        expectRefused("UPDATE audit.entries SET outcome = 7", on: connection)
        expectRefused("UPDATE audit.entries SET message = 'x' WHERE id = \(Int64(before[0].id))", on: connection)
        expectRefused("DELETE FROM audit.entries WHERE id = \(Int64(before[1].id))", on: connection)
        expectRefused("DELETE FROM audit.entries WHERE false", on: connection)
        expectRefused("TRUNCATE audit.entries", on: connection)
        expectRefused(
            """
            INSERT INTO audit.entries (id, service, method, outcome) VALUES (\(Int64(before[0].id)), 'x', 'y', 0)
            ON CONFLICT (id) DO UPDATE SET message = 'rewritten'
            """, on: connection)
        // Replica mode turns ordinary triggers off; these are ENABLE ALWAYS.
        try connection.execute("SET session_replication_role = replica")
        expectRefused("DELETE FROM audit.entries", on: connection)
        expectRefused("TRUNCATE audit.entries", on: connection)
        try connection.execute("SET session_replication_role = DEFAULT")

        #expect(try await database.all() == before)
        // Appending still works.
        await database.log.append(Self.record)
        #expect(try await database.all().count == 3)
    }

    @Test("P9: UPDATE, DELETE and TRUNCATE are revoked from everyone, the owning role included")
    func privilegesRevoked() async throws {
        let database = try AuditDatabase.make()
        defer { Task { await database.pool.close() } }
        let connection = try database.connect()
        let acl: String = try connection.query(
            "SELECT coalesce(relacl::text, '') AS acl FROM pg_class WHERE oid = 'audit.entries'::regclass"
        ).first!.decode("acl")
        // aclitem letters: a INSERT, r SELECT, w UPDATE, d DELETE, D TRUNCATE.
        #expect(!acl.isEmpty, "an explicit ACL")
        #expect(!acl.contains("w") && !acl.contains("d") && !acl.contains("D"), "\(acl)")
        #expect(acl.contains("a") && acl.contains("r"), "\(acl)")
    }

    @Test("P9: migrating twice, and from 6 processes at once, applies the schema once")
    func migrateRepeatedly() async throws {
        let connectionString = try TestDatabase.create()
        let logger = Logger(label: "audit-tests")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await onOwnThread {
                        let connection = try PostgresConnection(connectionString: connectionString)
                        try AuditLog.migrate(connection: connection, logger: logger)
                    }
                }
            }
            try await group.waitForAll()
        }
        let connection = try PostgresConnection(connectionString: connectionString)
        try AuditLog.migrate(connection: connection, logger: logger)
        try AuditLog.migrate(connection: connection, logger: logger)
        let applied = try connection.query(
            "SELECT version FROM public.rampart_schema_migrations WHERE schema = 'audit' ORDER BY version")
        #expect(try applied.map { try $0.decode("version", as: Int.self) } == AuditLog.migrations.map(\.version))
        let triggers = try connection.query(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'audit.entries'::regclass ORDER BY tgname")
        #expect(try triggers.map { try $0.decode("tgname", as: String.self) } == ["entries_append_only", "entries_no_truncate"])
        #expect(try triggers.map { try $0.decode("tgenabled", as: String.self) } == ["A", "A"], "ENABLE ALWAYS")
        #expect(try AuditLog.insert(Self.record, on: connection) > 0)
    }
}
