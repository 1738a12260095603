import Foundation
import Postgres
import RampartTesting
import Testing

@Suite("SQL interpolation turns every value into a bind parameter")
struct SQLInterpolationTests {
    @Test("placeholders are numbered in order")
    func numbersPlaceholders() {
        let id = 42
        let name = "widget"
        let sql: SQL = "SELECT * FROM t WHERE id = \(id) AND name = \(name)"
        #expect(sql.text == "SELECT * FROM t WHERE id = $1 AND name = $2")
        #expect(sql.binds == [PostgresBind(text: "42"), PostgresBind(text: "widget")])
    }

    @Test("placeholders past nine keep counting")
    func manyPlaceholders() {
        let values = Array(1...12)
        let sql: SQL = """
            VALUES (\(values[0]), \(values[1]), \(values[2]), \(values[3]), \(values[4]), \(values[5]), \
            \(values[6]), \(values[7]), \(values[8]), \(values[9]), \(values[10]), \(values[11]))
            """
        #expect(sql.text == "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        #expect(sql.binds.map(\.value) == values.map { Array(String($0).utf8) })
    }

    @Test("nil becomes NULL")
    func nilIsNull() {
        let missing: String? = nil
        let present: Int? = 7
        let sql: SQL = "UPDATE t SET a = \(missing), b = \(present)"
        #expect(sql.text == "UPDATE t SET a = $1, b = $2")
        #expect(sql.binds == [.null, PostgresBind(text: "7")])
        #expect(sql.binds[0].value == nil)
    }

    @Test("unsafeRaw text is inserted untouched and binds nothing")
    func unsafeRaw() {
        let sql: SQL = "SELECT * FROM \(unsafeRaw: "inventory.items") WHERE id = \(1)"
        #expect(sql.text == "SELECT * FROM inventory.items WHERE id = $1")
        #expect(sql.binds.count == 1)
    }

    @Test("no value ever appears in the text", arguments: ["'; DROP TABLE users; --", "$1", "a\"b", "\\x00"])
    func valuesNeverInText(value: String) {
        let sql: SQL = "SELECT \(value), \(Optional(value)), \([value])"
        #expect(sql.text == "SELECT $1, $2, $3")
        #expect(!sql.text.contains(value) || value == "$1")
        #expect(sql.binds[0] == PostgresBind(text: value))
    }

    @Test("bytea binds are binary, everything else text")
    func formats() {
        let sql: SQL = "SELECT \([UInt8]([0, 1, 2])), \(Data([3])), \(true), \(1.5), \(["x"])"
        #expect(sql.binds.map(\.isBinary) == [true, true, false, false, false])
        #expect(sql.binds[0].value == [0, 1, 2])
        #expect(sql.binds[2] == PostgresBind(text: "true"))
        #expect(sql.binds[4] == PostgresBind(text: #"{"x"}"#))
    }

    @Test("a literal without interpolation has no binds")
    func literal() {
        let sql: SQL = "SELECT 1"
        #expect(sql.text == "SELECT 1")
        #expect(sql.binds.isEmpty)
    }
}

@Suite("Test databases get their own name in the connection string")
struct TestDatabaseTests {
    @Test(
        "dbname is replaced or appended",
        arguments: [
            ("host=/tmp/s port=5 user=postgres dbname=postgres", "host=/tmp/s port=5 user=postgres dbname=t_1"),
            ("dbname=postgres host=/tmp/s", "dbname=t_1 host=/tmp/s"),
            ("host=/tmp/s dbname='my db' user=u", "host=/tmp/s dbname=t_1 user=u"),
            ("host=/tmp/s port=5", "host=/tmp/s port=5 dbname=t_1"),
            ("postgresql://u@localhost:5432/postgres?sslmode=disable", "postgresql://u@localhost:5432/t_1?sslmode=disable"),
        ])
    func replacesDatabase(input: String, expected: String) {
        #expect(TestDatabase.connectionString(input, database: "t_1") == expected)
    }
}
