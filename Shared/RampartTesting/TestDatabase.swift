import Foundation
import Postgres

/// Throwaway databases on the PostgreSQL server that the test command started (`dev/test.sh`, `dev/pg.sh`).
public enum TestDatabase {
    /// Why a test database could not be provided.
    public struct SetupError: Error, CustomStringConvertible, Sendable {
        /// What is wrong and how to fix it.
        public var description: String
    }

    /// The environment variable holding the server's libpq connection string.
    public static let environmentVariable = "RAMPART_TEST_PG"

    /// The connection string of the throwaway server the test command started (env RAMPART_TEST_PG).
    /// Throws a clear error when absent: tests fail, never skip.
    public static func serverConnectionString() throws -> String {
        guard let value = ProcessInfo.processInfo.environment[environmentVariable],
            !value.trimmingCharacters(in: .whitespaces).isEmpty
        else {
            throw SetupError(description: "\(environmentVariable) is not set: run the tests with dev/test.sh")
        }
        return value
    }

    /// Creates a fresh, uniquely named database ("t_<random hex>") on that server and returns its connection string.
    ///
    /// Databases are not dropped: they vanish with the throwaway server.
    public static func create() throws -> String {
        let server = try serverConnectionString()
        let name = "t_" + (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let connection = try PostgresConnection(connectionString: server)
        // The name is generated here from hex digits, never from input, so raw text is safe.
        try connection.execute("CREATE DATABASE \(unsafeRaw: name)")
        return connectionString(server, database: name)
    }

    /// `connectionString` with its database replaced by `database` (keyword/value or URI form).
    public static func connectionString(_ connectionString: String, database: String) -> String {
        if connectionString.hasPrefix("postgres://") || connectionString.hasPrefix("postgresql://"),
            var components = URLComponents(string: connectionString)
        {
            components.path = "/" + database
            if let url = components.string { return url }
        }
        let pattern = #"(^|\s)dbname\s*=\s*('(?:[^'\\]|\\.)*'|\S+)"#
        if let regex = try? NSRegularExpression(pattern: pattern),
            let match = regex.firstMatch(
                in: connectionString, range: NSRange(connectionString.startIndex..., in: connectionString)),
            let range = Range(match.range, in: connectionString)
        {
            let prefix = connectionString[range].first?.isWhitespace == true ? " " : ""
            return connectionString.replacingCharacters(in: range, with: "\(prefix)dbname=\(database)")
        }
        return connectionString.trimmingCharacters(in: .whitespaces) + " dbname=\(database)"
    }
}
