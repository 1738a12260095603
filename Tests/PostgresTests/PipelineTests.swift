import Postgres
import Testing

/// `PostgresConnection.pipeline`: several statements in one round trip (libpq pipeline mode).
@Suite("Pipelines: statements sent together run in order, and a failure leaves the connection usable")
struct PipelineTests {
    let connection: PostgresConnection

    init() throws {
        connection = try freshConnection()
        try connection.executeScript(unsafeRawSQL: "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
    }

    func names() throws -> [String] {
        try connection.query("SELECT name FROM items ORDER BY id").map { try $0.decode("name") }
    }

    @Test("the statements run in order, each seeing the ones before, and their rows come back in order")
    func inOrder() throws {
        let results = try connection.transaction { connection in
            try connection.pipeline([
                "INSERT INTO items VALUES (\(1), \("one"))",
                "INSERT INTO items VALUES (\(2), \("two")) RETURNING id",
                "SELECT count(*) AS n FROM items",
                "UPDATE items SET name = name || \("!") WHERE id >= \(1)",
            ])
        }
        #expect(results.count == 4)
        #expect(results[0].affectedRows == 1 && results[0].count == 0)
        #expect(try results[1].first?.decode("id", as: Int.self) == 2)
        #expect(try results[2].first?.decode("n", as: Int.self) == 2, "the SELECT sees both INSERTs before it")
        #expect(results[3].affectedRows == 2)
        #expect(try names() == ["one!", "two!"])
        #expect(try connection.pipeline([]).isEmpty)
    }

    @Test("a failing statement: its own error, the ones after it not run, the transaction rolled back; the connection goes on")
    func failure() throws {
        try connection.execute("INSERT INTO items VALUES (\(1), \("kept"))")
        let error = #expect(throws: PostgresError.self) {
            try connection.transaction { connection in
                _ = try connection.pipeline([
                    "INSERT INTO items VALUES (\(2), \("two"))",
                    "INSERT INTO items VALUES (\(1), \("duplicate"))",
                    "INSERT INTO items VALUES (\(3), \("three"))",
                ])
            }
        }
        #expect(error?.sqlState == "23505", "unique_violation: \(String(describing: error))")
        #expect(!connection.isInTransaction)
        #expect(try names() == ["kept"], "nothing of the failed transaction stays")
        // Outside a transaction the pipeline is one implicit transaction: all or nothing.
        #expect(throws: PostgresError.self) {
            _ = try connection.pipeline(["INSERT INTO items VALUES (\(4), \("four"))", "SELECT 1/\(0) AS x"])
        }
        #expect(try names() == ["kept"])
        // The connection is usable, in and out of pipelines.
        #expect(try connection.pipeline(["SELECT \(7)::int AS x"]).first?.first?.decode("x", as: Int.self) == 7)
        try connection.execute("INSERT INTO items VALUES (\(5), \("five"))")
        #expect(try names() == ["kept", "five"])
    }

    @Test("statements in a pipeline are prepared once per session, like single ones")
    func prepared() throws {
        for id in 1...3 {
            _ = try connection.pipeline(["INSERT INTO items VALUES (\(id), \("n\(id)"))", "SELECT \(id) AS x"])
        }
        let texts: [String] = try connection.query("SELECT statement FROM pg_prepared_statements").map { try $0.decode("statement") }
        #expect(texts.filter { $0.hasPrefix("INSERT INTO items") }.count == 1, "\(texts)")
        #expect(try names() == ["n1", "n2", "n3"])
    }

    @Test("a NUL in a text parameter is refused before anything is sent")
    func nulRefused() throws {
        let error = #expect(throws: PostgresError.self) {
            _ = try connection.pipeline(["INSERT INTO items VALUES (\(1), \("ok"))", "INSERT INTO items VALUES (\(2), \("a\u{0}b"))"])
        }
        #expect(error?.sqlState == "22021")
        #expect(try names().isEmpty)
    }
}
