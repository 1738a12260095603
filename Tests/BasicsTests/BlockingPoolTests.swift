import Foundation
import RampartBasics
import Synchronization
import Testing

/// `BlockingPool`: threads of its own for work that blocks (docs/decisions.md, "Blocking work runs on
/// threads of its own"). Every wait here is bounded (a guard against hangs, never a speed check).
@Suite("BlockingPool: blocking work off the cooperative pool")
struct BlockingPoolTests {
    @Test("work that blocks its thread does not hold up the next: a thread is started for it")
    func blockedWorkDoesNotHoldOthers() async throws {
        let pool = BlockingPool(name: "test-blocked", maxThreads: 8, idleTimeout: .seconds(10))
        let gate = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        // Three closures hold their threads until a fourth, submitted once all three run, opens the gate.
        let held = (0..<3).map { _ in
            Task {
                await pool.run { () -> Bool in
                    started.signal()
                    return gate.wait(timeout: .now() + 30) == .success
                }
            }
        }
        let allStarted = await pool.run { (0..<3).allSatisfy { _ in started.wait(timeout: .now() + 30) == .success } }
        #expect(allStarted, "the three holding closures all run at once")
        let opener = await pool.run { () -> Bool in
            for _ in 0..<3 { gate.signal() }
            return true
        }
        #expect(opener)
        for task in held { #expect(await task.value, "a held closure was let go by the gate, not its timeout") }
        #expect(pool.threadCount >= 4)
    }

    @Test("past maxThreads work queues in order and every piece runs")
    func boundedThreads() async throws {
        let pool = BlockingPool(name: "test-bounded", maxThreads: 2, idleTimeout: .seconds(10))
        final class Concurrency: Sendable {
            let counts = Mutex((running: 0, most: 0))
        }
        let concurrency = Concurrency()
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<20 {
                group.addTask {
                    try await pool.run { () throws -> Int in
                        concurrency.counts.withLock { counts in
                            counts.running += 1
                            counts.most = max(counts.most, counts.running)
                        }
                        usleep(2_000)
                        concurrency.counts.withLock { $0.running -= 1 }
                        return index
                    }
                }
            }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(results == Set(0..<20))
        #expect(concurrency.counts.withLock { $0.most } <= 2)
        #expect(pool.threadCount <= 2)
    }

    @Test("a task preferring the pool runs there, and an error thrown there reaches the caller")
    func executorPreference() async throws {
        let pool = BlockingPool(name: "test-executor", maxThreads: 2, idleTimeout: .seconds(10))
        let name = await Task(executorPreference: pool) { Self.threadName() }.value
        #expect(name.hasPrefix("test-executor-"), "ran on \(name)")
        struct Refused: Error {}
        await #expect(throws: Refused.self) { try await pool.run { () throws -> Int in throw Refused() } }
    }

    /// The calling thread's name (a synchronous function: `Thread.current` is not for async code).
    static func threadName() -> String { Thread.current.name ?? "" }

    @Test("threads idle for the timeout end; work after that starts a new one")
    func idleThreadsEnd() async throws {
        let pool = BlockingPool(name: "test-idle", maxThreads: 4, idleTimeout: .milliseconds(50))
        #expect(await pool.run { 1 } == 1)
        var threads = pool.threadCount
        for _ in 0..<1000 where threads > 0 {
            try await Task.sleep(for: .milliseconds(10))
            threads = pool.threadCount
        }
        #expect(threads == 0, "an idle pool keeps no thread")
        #expect(await pool.run { 2 } == 2)
    }
}
