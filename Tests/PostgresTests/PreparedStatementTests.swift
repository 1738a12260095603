import Postgres
import Testing

/// docs/decisions.md, "Database: statements prepared per connection, plans chosen by PostgreSQL".
@Suite("Statements are prepared once per session and still planned with their values")
struct PreparedStatementTests {
    let connection: PostgresConnection

    init() throws {
        connection = try freshConnection()
        try connection.executeScript(unsafeRawSQL: "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
    }

    func preparedTexts() throws -> [String] {
        try connection.query("SELECT statement FROM pg_prepared_statements ORDER BY name").map { try $0.decode("statement") }
    }

    @Test("a statement run many times is prepared once; each run gets its own values")
    func preparedOnce() throws {
        for id in 1...5 { try connection.execute("INSERT INTO items VALUES (\(id), \("item-\(id)"))") }
        let names: [String] = try connection.query("SELECT name FROM items WHERE id >= \(4) ORDER BY id").map { try $0.decode("name") }
        #expect(names == ["item-4", "item-5"])
        let texts = try preparedTexts()
        #expect(texts.filter { $0.hasPrefix("INSERT INTO items") }.count == 1, "\(texts)")
        #expect(texts.contains { $0.hasPrefix("SELECT name FROM items") })
    }

    @Test("a lookup by key gets a generic plan; an optional filter keeps plans made for its values (plan_cache_mode = auto)")
    func planChoice() throws {
        let mode: String = try #require(try connection.query("SHOW plan_cache_mode").first).decode("plan_cache_mode")
        #expect(mode == "auto")
        try connection.executeScript(
            unsafeRawSQL: """
                INSERT INTO items SELECT n, 'item-' || n FROM generate_series(1, 20000) n;
                CREATE INDEX items_name ON items (name);
                ANALYZE items;
                """)
        for id in 1...10 {
            #expect(try connection.query("SELECT name FROM items WHERE id = \(id)").count == 1)
            let name = "item-\(id * 7)"
            #expect(try connection.query("SELECT id FROM items WHERE (\(name) = '' OR name = \(name))").count == 1)
        }
        let plans = try connection.query("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        func counts(_ prefix: String) throws -> (generic: Int, custom: Int) {
            let row = try #require(plans.first { (try? $0.decode("statement", as: String.self).hasPrefix(prefix)) == true })
            return (try row.decode("generic_plans"), try row.decode("custom_plans"))
        }
        let byKey = try counts("SELECT name FROM items WHERE id")
        #expect(byKey.generic >= 4, "a key lookup stops being planned per execution: \(byKey)")
        let optional = try counts("SELECT id FROM items WHERE (")
        #expect(optional.generic == 0 && optional.custom == 10, "the optional filter keeps its index plans: \(optional)")
    }

    @Test("a statement the server refuses fails with the server's own error, also inside a transaction")
    func refusedStatement() throws {
        let error = #expect(throws: PostgresError.self) {
            try connection.transaction { try $0.execute("INSERT INTO no_such_table VALUES (\(1))") }
        }
        #expect(error?.sqlState == "42P01", "undefined_table, not 'current transaction is aborted': \(String(describing: error))")
        #expect(!connection.isInTransaction)
        try connection.execute("INSERT INTO items VALUES (\(1), \("after"))")
    }

    @Test("a table changed under a prepared statement: one 0A000, then the statement is prepared afresh")
    func tableChanged() throws {
        try connection.execute("INSERT INTO items VALUES (\(1), \("one"))")
        let select: SQL = "SELECT * FROM items WHERE id = \(1)"
        #expect(try connection.query(select).count == 1)
        try connection.executeScript(unsafeRawSQL: "ALTER TABLE items ADD COLUMN note text")
        let error = #expect(throws: PostgresError.self) { try connection.query(select) }
        #expect(error?.sqlState == "0A000", "cached plan must not change result type: \(String(describing: error))")
        let rows = try connection.query(select)
        #expect(rows.count == 1 && rows.columns == ["id", "name", "note"], "prepared afresh: \(rows.columns)")
    }

    @Test("a new session (reset) prepares afresh")
    func resetForgets() throws {
        try connection.execute("INSERT INTO items VALUES (\(1), \("one"))")
        connection.reset()
        #expect(connection.isHealthy)
        let texts = try preparedTexts()  // (the query of pg_prepared_statements is itself prepared)
        #expect(!texts.contains { $0.hasPrefix("INSERT") }, "the old session's statements are gone: \(texts)")
        try connection.execute("INSERT INTO items VALUES (\(2), \("two"))")
        #expect(try connection.query("SELECT id FROM items").count == 2)
    }
}
