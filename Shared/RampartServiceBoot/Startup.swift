import Foundation
import Logging
import Postgres

/// Start-up steps every service shares.
public enum Startup {
    /// Opens a connection, retrying while the server is not up yet (compose starts everything at
    /// once), for at most `timeout`; then runs `body` (migrations) on it.
    public static func withDatabase<T>(
        _ connectionString: String, timeout: Duration = .seconds(30), logger: Logger,
        _ body: (PostgresConnection) throws -> T
    ) async throws -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var delay = Duration.milliseconds(100)
        while true {
            do {
                let connection = try PostgresConnection(connectionString: connectionString)
                return try body(connection)
            } catch let error as PostgresError where error.isConnectionFailure && clock.now + delay < deadline {
                logger.notice("database not reachable yet, retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}
