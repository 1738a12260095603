import Foundation
import Logging
import Postgres
import RampartTesting
import Synchronization
import Testing

@Suite("The pool shares a few connections and recovers from server restarts")
struct PostgresPoolTests {
    let logger = Logger(label: "test.pool")

    @Test("more callers than connections all get served, never more than size at once")
    func moreCallersThanSize() async throws {
        let pool = PostgresPool(connectionString: try TestDatabase.create(), size: 3, logger: logger)
        let busy = Busy()
        let pids = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    try await pool.withConnection { connection in
                        busy.state.withLock { $0.now += 1; $0.max = max($0.max, $0.now) }
                        defer { busy.state.withLock { $0.now -= 1 } }
                        let row = try connection.query("SELECT pg_backend_pid() AS pid, pg_sleep(0.05)").first
                        return try #require(row).decode("pid", as: Int.self)
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(pids.count == 12)
        #expect(Set(pids).count <= 3)
        #expect(busy.state.withLock { $0.max } <= 3)
        #expect(busy.state.withLock { $0.max } >= 2)
        await pool.close()
    }

    @Test("connections open lazily")
    func lazy() async throws {
        let pool = PostgresPool(connectionString: try TestDatabase.create(), size: 4, logger: logger)
        var pids: Set<Int> = []
        for _ in 0..<5 {
            pids.insert(try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS p").first!.decode("p") })
        }
        #expect(pids.count == 1)
        await pool.close()
    }

    struct Boom: Error {}

    /// How many bodies run at once, and the most seen.
    final class Busy: Sendable {
        let state = Mutex((now: 0, max: 0))
    }

    @Test("pool transactions roll back on throw; an open transaction left by a body is rolled back")
    func transactions() async throws {
        let pool = PostgresPool(connectionString: try TestDatabase.create(), size: 1, logger: logger)
        _ = try await pool.withConnection { try $0.execute("CREATE TABLE t (x int)") }
        await #expect(throws: Boom.self) {
            try await pool.transaction { connection in
                try connection.execute("INSERT INTO t VALUES (1)")
                throw Boom()
            }
        }
        _ = try await pool.transaction { try $0.execute("INSERT INTO t VALUES (2)") }
        try await pool.withConnection { connection in
            try connection.execute("BEGIN")
            try connection.execute("INSERT INTO t VALUES (3)")
        }
        let values = try await pool.withConnection { connection in
            #expect(!connection.isInTransaction)
            return try connection.query("SELECT x FROM t").map { try $0.decode("x", as: Int.self) }
        }
        #expect(values == [2])
        await pool.close()
    }

    // The point is that it ends (never hangs): Swift Testing's time limit fails it if it does not, a bound
    // far above anything a loaded machine needs (an in-test clock check once failed under load: the test
    // task got no thread for half a minute while the connection attempt had long failed).
    @Test("an unreachable server fails with a connection error, and does not hang", .timeLimit(.minutes(3)))
    func unreachable() async throws {
        let pool = PostgresPool(
            connectionString: "host=/nonexistent-rampart port=1 user=postgres connect_timeout=2", size: 2, logger: logger)
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { _ in 1 }
        }
        #expect(error?.kind == .connection)
        #expect(error?.isConnectionFailure == true)
        await pool.close()
    }

    @Test("a closed pool refuses work")
    func closed() async throws {
        let pool = PostgresPool(connectionString: try TestDatabase.create(), size: 1, logger: logger)
        _ = try await pool.withConnection { try $0.query("SELECT 1") }
        await pool.close()
        let error = await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in 1 } }
        #expect(error?.kind == .pool)
    }

    @Test("after the server stops calls fail fast; after it restarts the next call succeeds")
    func reconnect() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-pg-\(UUID().uuidString)")
        let port = String(Int.random(in: 40_000...50_000))
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = try await pg("start", directory.path, port)
        do {
            let pool = PostgresPool(connectionString: url, size: 2, logger: logger)
            #expect(try await pool.withConnection { try $0.query("SELECT 1 AS one").first?.decode("one", as: Int.self) } == 1)

            try await pg("stop", directory.path)
            for _ in 0..<2 {
                let start = ContinuousClock.now
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.withConnection { try $0.query("SELECT 1").count }
                }
                #expect(error?.isConnectionFailure == true)
                // Ends at once rather than waiting on the dead server (a liveness bound, not a speed check).
                #expect(ContinuousClock.now - start < .seconds(20))
            }

            try await pg("start", directory.path, port)
            let one = try await pool.withConnection { try $0.query("SELECT 1 AS one").first?.decode("one", as: Int.self) }
            #expect(one == 1)
            await pool.close()
        } catch {
            _ = try? await pg("stop", directory.path)
            throw error
        }
        try await pg("stop", directory.path)
    }
}

extension PostgresPoolTests {
    @Test("P10: a server restarted while the pool sat idle: the first call afterwards succeeds on a new connection")
    func restartWhileIdle() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-pg-\(UUID().uuidString)")
        let port = String(Int.random(in: 40_000...50_000))
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = try await pg("start", directory.path, port)
        do {
            let pool = PostgresPool(connectionString: url, size: 1, logger: logger)
            let before = try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS pid").first?.decode("pid", as: Int.self) }
            try await pg("stop", directory.path)
            try await pg("start", directory.path, port)
            // No call in between: the pooled connection still looks open to libpq until it reads.
            let after = try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS pid").first?.decode("pid", as: Int.self) }
            #expect(after != nil && after != before, "a new session")
            await pool.close()
        } catch {
            _ = try? await pg("stop", directory.path)
            throw error
        }
        try await pg("stop", directory.path)
    }
}

@Suite("Waiting for a pooled connection")
struct PoolWaitingTests {
    /// The holder below was never let go.
    struct TimedOut: Error {}

    /// Set once, read from any thread.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .acquiring) }
        func set() { value.store(true, ordering: .releasing) }
    }

    /// Polls `condition` every millisecond, for at most 10 s.
    static func until(_ condition: () -> Bool) async throws {
        for _ in 0..<10_000 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(1))
        }
        Issue.record("the pool never reached the state waited for")
    }

    @Test("a caller cancelled while waiting gives up; the others are still served in turn")
    func cancelledWaiter() async throws {
        let pool = PostgresPool(connectionString: try TestDatabase.create(), size: 1, logger: Logger(label: "test.pool"))
        // The only connection is held until the waiter has given up.
        let letGo = Flag()
        let holder = Task {
            try await pool.withConnection { connection in
                let deadline = Date().addingTimeInterval(10)
                while !letGo.isSet {
                    // Thrown, not `#require`: this runs on the connection's thread, outside the test's task.
                    guard Date() < deadline else { throw TimedOut() }
                    Thread.sleep(forTimeInterval: 0.001)
                }
                return try connection.query("SELECT 1").count
            }
        }
        try await Self.until { pool.usage.taken == 1 }
        let waiter = Task { try await pool.withConnection { _ in 1 } }
        try await Self.until { pool.usage.waiting == 1 }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        letGo.set()
        #expect(try await holder.value == 1)
        #expect(try await pool.withConnection { try $0.query("SELECT 1 AS one").first?.decode("one", as: Int.self) } == 1)
        await pool.close()
    }
}
