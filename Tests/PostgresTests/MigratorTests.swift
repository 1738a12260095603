import Logging
import Postgres
import RampartTesting
import Testing

@Suite("Migrations apply once, in order, even when many instances start together")
struct MigratorTests {
    let logger = Logger(label: "test.migrator")

    static let migrations = [
        Migration(version: 1, name: "create", sql: "CREATE SCHEMA inv; CREATE TABLE inv.runs (version int NOT NULL);"),
        Migration(version: 2, name: "slow", sql: "INSERT INTO inv.runs VALUES (2); SELECT pg_sleep(0.2);"),
        Migration(version: 3, name: "third", sql: "INSERT INTO inv.runs VALUES (3);"),
    ]

    @Test("8 concurrent migrators apply each migration exactly once")
    func concurrent() async throws {
        let database = try TestDatabase.create()
        let logger = logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await onOwnThread {
                        let connection = try PostgresConnection(connectionString: database)
                        try Migrator.migrate(
                            schema: "inv", migrations: Self.migrations, connection: connection, logger: logger)
                    }
                }
            }
            try await group.waitForAll()
        }
        let connection = try PostgresConnection(connectionString: database)
        let runs = try connection.query("SELECT version FROM inv.runs ORDER BY version").map {
            try $0.decode("version", as: Int.self)
        }
        #expect(runs == [2, 3])
        let book = try connection.query(
            "SELECT version, name, checksum FROM public.rampart_schema_migrations WHERE schema = \("inv") ORDER BY version")
        #expect(try book.map { try $0.decode("version", as: Int.self) } == [1, 2, 3])
        #expect(try book.map { try $0.decode("checksum", as: String.self) } == Self.migrations.map(\.checksum))

        // Running again changes nothing.
        try Migrator.migrate(schema: "inv", migrations: Self.migrations, connection: connection, logger: logger)
        #expect(try connection.query("SELECT version FROM inv.runs").count == 2)
    }

    @Test("new migrations are applied on top of old ones, and schemas are independent")
    func incremental() throws {
        let connection = try freshConnection()
        try Migrator.migrate(
            schema: "inv", migrations: Array(Self.migrations.prefix(1)), connection: connection, logger: logger)
        #expect(try connection.query("SELECT * FROM inv.runs").count == 0)
        try Migrator.migrate(schema: "inv", migrations: Self.migrations, connection: connection, logger: logger)
        #expect(try connection.query("SELECT * FROM inv.runs").count == 2)
        try Migrator.migrate(
            schema: "other", migrations: [Migration(version: 1, name: "t", sql: "CREATE TABLE other_t (x int)")],
            connection: connection, logger: logger)
        let schemas = try connection.query(
            "SELECT DISTINCT schema FROM public.rampart_schema_migrations ORDER BY schema"
        ).map { try $0.decode("schema", as: String.self) }
        #expect(schemas == ["inv", "other"])
    }

    @Test("a changed applied migration is refused")
    func checksumChange() throws {
        let connection = try freshConnection()
        try Migrator.migrate(schema: "inv", migrations: Self.migrations, connection: connection, logger: logger)
        var changed = Self.migrations
        changed[1] = Migration(version: 2, name: "slow", sql: "INSERT INTO inv.runs VALUES (22);")
        changed.append(Migration(version: 4, name: "later", sql: "INSERT INTO inv.runs VALUES (4);"))
        let error = #expect(throws: MigrationError.self) {
            try Migrator.migrate(schema: "inv", migrations: changed, connection: connection, logger: logger)
        }
        #expect(error?.message.contains("2") == true)
        // Nothing after the refusal ran.
        #expect(try connection.query("SELECT * FROM inv.runs WHERE version = \(4)").count == 0)
    }

    @Test("a failing migration is rolled back and not recorded")
    func failingMigration() throws {
        let connection = try freshConnection()
        let broken = Self.migrations + [
            Migration(version: 4, name: "broken", sql: "INSERT INTO inv.runs VALUES (4); SELECT * FROM nowhere;")
        ]
        #expect(throws: PostgresError.self) {
            try Migrator.migrate(schema: "inv", migrations: broken, connection: connection, logger: logger)
        }
        #expect(try connection.query("SELECT * FROM inv.runs WHERE version = \(4)").count == 0)
        let recorded = try connection.query("SELECT max(version) AS v FROM public.rampart_schema_migrations")
        #expect(try recorded.first?.decode("v", as: Int.self) == 3)
        // The advisory lock was released: the session can migrate again, and so can another one.
        try Migrator.migrate(schema: "inv", migrations: Self.migrations, connection: connection, logger: logger)
        let database = try #require(try connection.query("SELECT current_database() AS d").first).decode("d", as: String.self)
        let other = try PostgresConnection(
            connectionString: TestDatabase.connectionString(try TestDatabase.serverConnectionString(), database: database))
        try Migrator.migrate(schema: "inv", migrations: Self.migrations, connection: other, logger: logger)
    }

    @Test("duplicate versions are refused before anything runs")
    func duplicateVersions() throws {
        let connection = try freshConnection()
        let twice = [Self.migrations[0], Migration(version: 1, name: "again", sql: "SELECT 1")]
        #expect(throws: MigrationError.self) {
            try Migrator.migrate(schema: "inv", migrations: twice, connection: connection, logger: logger)
        }
    }

    @Test("the checksum is a stable 64-bit FNV-1a in hex")
    func checksum() {
        #expect(Migration(version: 1, name: "x", sql: "").checksum == "cbf29ce484222325")
        #expect(Migration(version: 1, name: "x", sql: "a").checksum == "af63dc4c8601ec8c")
    }
}
