import Dispatch
import Logging
import Synchronization

/// A small pool of connections; each connection lives on its own serial DispatchQueue,
/// so blocking libpq calls never occupy Swift's cooperative thread pool.
///
/// Connections open lazily (at most `size`); callers beyond `size` wait in FIFO order. A connection that
/// reports a connection failure is closed, so the next use reconnects; one the server closed while it was
/// idle (a server restart) is found dead when taken and replaced, so no call fails on it.
public final class PostgresPool: Sendable {
    private let connectionString: String
    private let logger: Logger
    private let slots: [Slot]
    private let state: Mutex<State>

    private struct State {
        /// Free slots; the last one is handed out next, so few connections stay open under light load.
        var free: [Int]
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Int, any Error>)] = []
        var nextWaiterID: UInt64 = 0
        var isClosed = false
    }

    /// Creates a pool of at most `size` connections to `connectionString`; nothing connects until first use.
    public init(connectionString: String, size: Int = 4, logger: Logger) {
        precondition(size > 0, "a pool needs at least one connection")
        self.connectionString = connectionString
        self.logger = logger
        self.slots = (0..<size).map { Slot(index: $0) }
        self.state = Mutex(State(free: Array((0..<size).reversed())))
    }

    /// How many connections are taken right now, and how many callers wait for one (for metrics, and
    /// for tests that wait for a state instead of sleeping).
    public var usage: (taken: Int, waiting: Int) {
        state.withLock { (slots.count - $0.free.count, $0.waiters.count) }
    }

    /// Runs `body` with a connection on that connection's own thread; waits while all connections are busy.
    ///
    /// Throws `.connection` when no connection can be opened, `.pool` after `close()`, `CancellationError` when
    /// cancelled while waiting, and whatever `body` throws.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        let index = try await acquire()
        defer { release(index) }
        return try await slots[index].run(connectionString: connectionString, logger: logger, body)
    }

    /// Runs `body` in a transaction (BEGIN/COMMIT, ROLLBACK when it throws) on a pooled connection.
    public func transaction<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await withConnection { connection in
            try connection.transaction(body)
        }
    }

    /// Fails waiting and later callers with `.pool` and closes idle connections; busy ones close when released.
    public func close() async {
        let (waiters, idle) = state.withLock { state in
            state.isClosed = true
            let waiters = state.waiters
            state.waiters = []
            return (waiters, state.free)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: PostgresError(kind: .pool, message: "the pool is closed"))
        }
        for index in idle {
            await slots[index].close()
        }
    }

    // MARK: - Slots

    private func acquire() async throws -> Int {
        let id = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
                let outcome: Result<Int, any Error>? = state.withLock { state in
                    if state.isClosed { return .failure(PostgresError(kind: .pool, message: "the pool is closed")) }
                    if let index = state.free.popLast() { return .success(index) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Int, any Error>? in
                guard let position = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: position).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func release(_ index: Int) {
        let (waiter, closed) = state.withLock { state -> (CheckedContinuation<Int, any Error>?, Bool) in
            if !state.waiters.isEmpty { return (state.waiters.removeFirst().continuation, false) }
            state.free.append(index)
            return (nil, state.isClosed)
        }
        if let waiter {
            waiter.resume(returning: index)
        } else if closed {
            slots[index].closeSoon()
        }
    }
}

/// One connection place of a pool: its serial queue and the connection only that queue touches.
private final class Slot: @unchecked Sendable {
    let queue: DispatchQueue
    /// Read and written only on `queue`.
    private var connection: PostgresConnection?

    init(index: Int) {
        queue = DispatchQueue(label: "postgres.pool.connection.\(index)")
    }

    func run<T: Sendable>(
        connectionString: String, logger: Logger, _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.runOnQueue(connectionString, logger, body) })
            }
        }
    }

    private func runOnQueue<T>(
        _ connectionString: String, _ logger: Logger, _ body: (PostgresConnection) throws -> T
    ) throws -> T {
        let connection = try ready(connectionString, logger)
        do {
            let value = try body(connection)
            cleanUp(connection, logger)
            return value
        } catch let error as PostgresError where error.isConnectionFailure {
            logger.warning("closing a failed PostgreSQL connection", metadata: ["error": "\(error)"])
            self.connection = nil
            throw error
        } catch {
            cleanUp(connection, logger)
            throw error
        }
    }

    /// The open connection, reconnecting when it is missing or broken.
    private func ready(_ connectionString: String, _ logger: Logger) throws -> PostgresConnection {
        if let connection, connection.isAliveAfterIdle { return connection }
        if connection != nil {
            logger.info("reconnecting a broken PostgreSQL connection")
            connection = nil
        }
        do {
            let fresh = try PostgresConnection(connectionString: connectionString)
            connection = fresh
            logger.debug("opened a PostgreSQL connection")
            return fresh
        } catch {
            logger.warning("cannot connect to PostgreSQL", metadata: ["error": "\(error)"])
            throw error
        }
    }

    /// Leaves the connection idle: rolls back a transaction the body left open, drops a broken connection.
    private func cleanUp(_ connection: PostgresConnection, _ logger: Logger) {
        if connection.isHealthy && connection.isInTransaction {
            logger.warning("rolling back a transaction left open on a pooled connection")
            _ = try? connection.execute("ROLLBACK")
        }
        if !connection.isHealthy || connection.isInTransaction {
            self.connection = nil
        }
    }

    func close() async {
        await withCheckedContinuation { continuation in
            queue.async {
                self.connection = nil
                continuation.resume()
            }
        }
    }

    func closeSoon() {
        queue.async { self.connection = nil }
    }
}
