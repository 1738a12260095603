import Postgres
import Testing

@Suite("Server errors are classified; transactions roll back on throw")
struct ErrorAndTransactionTests {
    let connection: PostgresConnection

    init() throws {
        connection = try freshConnection()
        try connection.executeScript(
            unsafeRawSQL: """
                CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, CONSTRAINT users_email_key UNIQUE (email));
                CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL CONSTRAINT orders_user_fk REFERENCES users);
                """)
    }

    @Test("a unique violation carries SQLSTATE 23505, the constraint and a detail kept out of the description")
    func uniqueViolation() throws {
        try connection.execute("INSERT INTO users VALUES (1, \("a@example.com"))")
        let error = #expect(throws: PostgresError.self) {
            try connection.execute("INSERT INTO users VALUES (2, \("a@example.com"))")
        }
        #expect(error?.isUniqueViolation == true)
        #expect(error?.sqlState == "23505")
        #expect(error?.kind == .query)
        #expect(error?.constraint == "users_email_key")
        #expect(error?.detail?.contains("a@example.com") == true)
        #expect(error?.description.contains("a@example.com") == false)
        #expect(error?.isConnectionFailure == false)
        #expect(error?.isSerializationFailure == false)
        #expect(connection.isHealthy)
    }

    @Test("a foreign-key violation is recognised")
    func foreignKeyViolation() throws {
        let error = #expect(throws: PostgresError.self) {
            try connection.execute("INSERT INTO orders VALUES (1, \(99))")
        }
        #expect(error?.isForeignKeyViolation == true)
        #expect(error?.constraint == "orders_user_fk")
    }

    @Test("a syntax error is a query error with a message")
    func syntaxError() throws {
        let error = #expect(throws: PostgresError.self) { try connection.query("SELEKT 1") }
        #expect(error?.kind == .query)
        #expect(error?.sqlState == "42601")
        #expect(error?.message.isEmpty == false)
    }

    @Test("a failed connection is a connection failure and never echoes the password")
    func connectionFailure() throws {
        let error = #expect(throws: PostgresError.self) {
            try PostgresConnection(
                connectionString: "host=/nonexistent-rampart port=1 user=postgres password=s3cret-pw connect_timeout=2")
        }
        #expect(error?.kind == .connection)
        #expect(error?.isConnectionFailure == true)
        #expect(error?.description.contains("s3cret-pw") == false)
        #expect(error?.message.contains("s3cret-pw") == false)
    }

    @Test("the transaction commits when the body returns")
    func commit() throws {
        let id = try connection.transaction { connection in
            try connection.execute("INSERT INTO users VALUES (10, \("c@example.com"))")
            return 10
        }
        #expect(try connection.query("SELECT id FROM users WHERE id = \(id)").count == 1)
        #expect(!connection.isInTransaction)
    }

    struct Boom: Error {}

    @Test("the transaction rolls back when the body throws")
    func rollback() throws {
        #expect(throws: Boom.self) {
            try connection.transaction { connection in
                try connection.execute("INSERT INTO users VALUES (20, \("d@example.com"))")
                throw Boom()
            }
        }
        #expect(try connection.query("SELECT id FROM users WHERE id = \(20)").count == 0)
        #expect(!connection.isInTransaction)
    }

    @Test("a server error inside the transaction rolls it back and the connection stays usable")
    func rollbackOnServerError() throws {
        #expect(throws: PostgresError.self) {
            try connection.transaction { connection in
                try connection.execute("INSERT INTO users VALUES (30, \("e@example.com"))")
                try connection.execute("INSERT INTO users VALUES (30, \("f@example.com"))")
            }
        }
        #expect(try connection.query("SELECT id FROM users WHERE id = \(30)").count == 0)
        #expect(try connection.query("SELECT 1 AS one").first?.decode("one", as: Int.self) == 1)
    }

    @Test("executeScript runs several statements and reports the failing one")
    func script() throws {
        try connection.executeScript(unsafeRawSQL: "CREATE TABLE a (x int); INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);")
        #expect(try connection.query("SELECT x FROM a").count == 2)
        let error = #expect(throws: PostgresError.self) {
            try connection.executeScript(unsafeRawSQL: "INSERT INTO a VALUES (3); SELECT * FROM missing_table;")
        }
        #expect(error?.sqlState == "42P01")
    }

    @Test("a text parameter with a NUL character is refused before it is sent")
    func nulCharacter() throws {
        let error = #expect(throws: PostgresError.self) { try connection.query("SELECT \("a\u{0}b") AS v") }
        #expect(error?.message.contains("$1") == true)
    }
}
