import Postgres
import RampartRPC

/// Runs a database operation, turning connection failures into `UNAVAILABLE`, data exceptions (a
/// value the database cannot take, such as NUL in text) into `INVALID_ARGUMENT`, and other database
/// errors into `INTERNAL` (with the cause kept for the log).
public func database<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as PostgresError {
        if error.isConnectionFailure {
            throw RPCError(.unavailable, "the database is unreachable; try again shortly", cause: error)
        }
        if error.isInvalidInput {
            throw RPCError(.invalidArgument, "a value in the request is not acceptable: \(error.message)", cause: error)
        }
        throw RPCError(.internal, "database error", cause: error)
    }
}

extension PostgresPool {
    /// Runs `body` in a transaction on behalf of a request: connection failures become `UNAVAILABLE`,
    /// other database errors `INTERNAL`; `RPCError`s thrown by `body` pass through unchanged.
    public func serve<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await database { try await transaction(body) }
    }
}
