import Foundation
import Postgres
import RampartTesting
import Testing

@Suite("Values survive a round trip through a real server")
struct RoundTripTests {
    /// One database for the whole suite (its tests create no conflicting objects); a connection per test.
    static let database = Result { try TestDatabase.create() }
    let connection: PostgresConnection

    init() throws {
        connection = try PostgresConnection(connectionString: Self.database.get())
    }

    func roundTrip<T: PostgresEncodable & PostgresDecodable>(_ value: T, as type: String) throws -> T {
        let rows = try connection.query("SELECT \(value)::\(unsafeRaw: type) AS v")
        return try #require(rows.first).decode("v", as: T.self)
    }

    @Test(
        "strings, including quotes, backslashes and unicode",
        arguments: [
            "", "plain", "O'Brien", #"say "hi""#, #"back\slash \\ \x00"#, "tab\tnew\nline", "日本語 ünïcødé 🎉👩‍👩‍👧",
            "NULL", "'; DROP TABLE x; --",
        ])
    func strings(value: String) throws {
        #expect(try roundTrip(value, as: "text") == value)
    }

    @Test("a long string")
    func longString() throws {
        let value = String(repeating: "long ünïcødé ", count: 100_000)
        #expect(try roundTrip(value, as: "text") == value)
    }

    @Test("integers", arguments: [0, 1, -1, Int.max, Int.min, 1_234_567_890_123])
    func integers(value: Int) throws {
        #expect(try roundTrip(value, as: "int8") == value)
        #expect(try roundTrip(Int64(value), as: "int8") == Int64(value))
    }

    @Test("32-bit integers", arguments: [Int32.min, -1, 0, Int32.max])
    func int32(value: Int32) throws {
        #expect(try roundTrip(value, as: "int4") == value)
    }

    @Test("booleans come back from 't' and 'f'")
    func booleans() throws {
        #expect(try roundTrip(true, as: "bool") == true)
        #expect(try roundTrip(false, as: "bool") == false)
        #expect(try connection.query("SELECT true AS v").first?["v"] == "t")
    }

    @Test("doubles, exactly", arguments: [0.0, -0.5, 0.1, 1e-300, 1.7976931348623157e308, .pi, 123456.789])
    func doubles(value: Double) throws {
        #expect(try roundTrip(value, as: "float8") == value)
    }

    @Test("special doubles")
    func specialDoubles() throws {
        #expect(try roundTrip(Double.infinity, as: "float8") == .infinity)
        #expect(try roundTrip(-Double.infinity, as: "float8") == -.infinity)
        #expect(try roundTrip(Double.nan, as: "float8").isNaN)
    }

    @Test("UUIDs")
    func uuids() throws {
        let id = UUID()
        #expect(try roundTrip(id, as: "uuid") == id)
    }

    @Test("dates keep microsecond precision, whatever the session time zone", arguments: ["UTC", "Asia/Kolkata", "America/St_Johns"])
    func dates(timeZone: String) throws {
        try connection.execute("SELECT set_config('TimeZone', \(timeZone), false)")
        for seconds in [1_795_000_000.123456, 1_795_000_000, 1_795_000_000.000001, -1_000_000_000.654321, 0.5] {
            let date = Date(timeIntervalSince1970: seconds)
            let back = try roundTrip(date, as: "timestamptz")
            #expect(micros(back) == micros(date), "\(seconds) in \(timeZone)")
        }
        let date = Date(timeIntervalSince1970: 1_795_000_000.123456)
        let rows = try connection.query(
            "SELECT to_char(\(date)::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS v")
        #expect(rows.first?["v"] == "2026-11-18 11:06:40.123456")
    }

    @Test("decodes PostgreSQL's timestamptz output")
    func dateOutput() throws {
        let expected = micros(Date(timeIntervalSince1970: 1_795_000_000.123456))
        #expect(micros(try Date(postgresText: "2026-11-18 11:06:40.123456+00")) == expected)
        #expect(micros(try Date(postgresText: "2026-11-18 16:36:40.123456+05:30")) == expected)
        #expect(micros(try Date(postgresText: "2026-11-18 11:06:40.123456")) == expected)
        #expect(try Date(postgresText: "2026-11-18 11:06:40+00") == Date(timeIntervalSince1970: 1_795_000_000))
        #expect(throws: PostgresError.self) { try Date(postgresText: "18/11/2026") }
    }

    func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    @Test("bytea with all 256 byte values, as [UInt8] and Data")
    func bytea() throws {
        let bytes = (0...255).map { UInt8($0) } + [0, 0, 255]
        #expect(try roundTrip(bytes, as: "bytea") == bytes)
        #expect(try roundTrip(Data(bytes), as: "bytea") == Data(bytes))
        #expect(try roundTrip([UInt8](), as: "bytea") == [])
        let length = try connection.query("SELECT length(\(bytes)) AS n").first?.decode("n", as: Int.self)
        #expect(length == bytes.count)
        let same = try connection.query("SELECT \(bytes) = decode(\(bytes.map { String(format: "%02x", $0) }.joined()), 'hex') AS same")
        #expect(try same.first?.decode("same", as: Bool.self) == true)
    }

    @Test("text[] with commas, quotes, braces, backslashes and NULL-ish words")
    func textArrays() throws {
        let values = [
            "a,b", #"q"uote"#, #"back\slash"#, "NULL", "null", "", " spaced ", "{braces}", "ünïcødé 🎉", "plain",
        ]
        #expect(try roundTrip(values, as: "text[]") == values)
        #expect(try roundTrip([String](), as: "text[]") == [])
        let count = try connection.query("SELECT cardinality(\(values)::text[]) AS n").first?.decode("n", as: Int.self)
        #expect(count == values.count)
        let third = try connection.query("SELECT (\(values)::text[])[3] AS v").first?["v"]
        #expect(third == #"back\slash"#)
    }

    @Test("an array holding a real NULL does not decode into [String]")
    func arrayWithNull() throws {
        let row = try #require(try connection.query("SELECT ARRAY['a', NULL]::text[] AS v").first)
        #expect(throws: PostgresError.self) { try row.decode("v", as: [String].self) }
    }

    @Test("other arrays: int8[] and uuid[]")
    func otherArrays() throws {
        #expect(try roundTrip([1, -2, Int.max], as: "int8[]") == [1, -2, Int.max])
        let ids = [UUID(), UUID()]
        #expect(try roundTrip(ids, as: "uuid[]") == ids)
        let rows = try connection.query("SELECT x FROM unnest(\(ids)::uuid[]) AS x WHERE x = ANY(\(ids))")
        #expect(rows.count == 2)
    }

    @Test("every type through a table, with NULLs")
    func table() throws {
        try connection.execute(
            """
            CREATE TABLE every (
                id uuid PRIMARY KEY, name text, n int8, small int4, flag bool, ratio float8,
                at timestamptz, blob bytea, tags text[])
            """)
        let id = UUID()
        let at = Date(timeIntervalSince1970: 1_795_000_000.654321)
        let inserted = try connection.execute(
            """
            INSERT INTO every VALUES (\(id), \("it's"), \(Int64(9)), \(Int32(-3)), \(true), \(2.5), \(at), \
            \(Data([0, 1, 2])), \(["x", "y,z"]))
            """)
        #expect(inserted == 1)
        let nothing: String? = nil
        try connection.execute("INSERT INTO every (id, name) VALUES (\(UUID()), \(nothing))")

        let row = try #require(try connection.query("SELECT * FROM every WHERE id = \(id)").first)
        #expect(try row.decode("id", as: UUID.self) == id)
        #expect(try row.decode("name", as: String.self) == "it's")
        #expect(try row.decode("n", as: Int64.self) == 9)
        #expect(try row.decode("small", as: Int32.self) == -3)
        #expect(try row.decode("flag", as: Bool.self))
        #expect(try row.decode("ratio", as: Double.self) == 2.5)
        #expect(try row.decode("at", as: Date.self).timeIntervalSince1970 == at.timeIntervalSince1970)
        #expect(try row.decode("blob", as: Data.self) == Data([0, 1, 2]))
        #expect(try row.decode("tags", as: [String].self) == ["x", "y,z"])

        let empty = try #require(try connection.query("SELECT * FROM every WHERE name IS NULL").first)
        #expect(try empty.decodeIfPresent("name", as: String.self) == nil)
        #expect(empty["name"] == nil)
        let error = #expect(throws: PostgresError.self) { try empty.decode("name", as: String.self) }
        #expect(error?.kind == .decoding)
        #expect(error?.message.contains("\"name\"") == true)
        let missing = #expect(throws: PostgresError.self) { try empty.decode("nope", as: String.self) }
        #expect(missing?.message.contains("\"nope\"") == true)

        let all = try connection.query("SELECT id FROM every ORDER BY name NULLS LAST")
        #expect(all.count == 2)
        #expect(all.columns == ["id"])
        #expect(Array(all).count == 2)
        #expect(try connection.execute("DELETE FROM every") == 2)
    }

    @Test("a wrongly typed column fails with a decoding error naming the column")
    func wrongType() throws {
        let row = try #require(try connection.query("SELECT 'abc'::text AS word").first)
        let error = #expect(throws: PostgresError.self) { try row.decode("word", as: Int.self) }
        #expect(error?.kind == .decoding)
        #expect(error?.message.contains("word") == true)
        #expect(error?.message.contains("abc") == false)
    }
}
