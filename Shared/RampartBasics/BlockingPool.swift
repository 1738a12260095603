import Foundation

/// Threads of Rampart's own for work that blocks or computes for long: file I/O, hashing a large
/// archive, a handler that holds its thread. Swift's cooperative pool must never wait on such work: on
/// Linux it has one thread per core (two on the machines Rampart runs its tests on) and dispatch's global
/// queues share those threads' limit, so one blocked or busy thread there delays every task of the
/// process — request handlers, lease renewals, heartbeats (docs/decisions.md, "Blocking work runs on
/// threads of its own").
///
/// The pool is a `TaskExecutor`: a task that prefers it runs every slice here, so a bus handler registered
/// `offSocketThread` may block without taking a thread from anyone else. `run(_:)` runs one closure here
/// and hands its result back. A job never waits for a blocked thread: when every thread is busy, a new one
/// is started (up to `maxThreads`; past that, jobs queue in order), and a thread idle for `idleTimeout`
/// ends, so an idle service keeps none.
public final class BlockingPool: TaskExecutor, @unchecked Sendable {
    /// The process's pool.
    public static let shared = BlockingPool(name: "blocking", maxThreads: 64, idleTimeout: .seconds(10))

    private enum Work {
        case job(UnownedJob)
        case closure(@Sendable () -> Void)
    }

    public let name: String
    public let maxThreads: Int
    private let idleTimeout: TimeInterval
    // Everything below is guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Work] = []
    private var head = 0
    private var threads = 0
    private var idle = 0
    /// Idle threads already signalled for a queued job, so a second job does not count on the same one.
    private var promised = 0

    /// A pool whose threads are named `name-N`.
    public init(name: String, maxThreads: Int, idleTimeout: Duration) {
        precondition(maxThreads > 0, "a pool needs a thread")
        self.name = name
        self.maxThreads = maxThreads
        let parts = idleTimeout.components
        self.idleTimeout = Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// Threads alive now (running a job or idle).
    public var threadCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return threads
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        submit(.job(UnownedJob(job)))
    }

    /// Runs `body` on a thread of the pool and returns what it returns or throws.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit(.closure { continuation.resume(with: Result { try body() }) })
        }
    }

    /// Runs `body`, which cannot throw, on a thread of the pool.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            submit(.closure { continuation.resume(returning: body()) })
        }
    }

    private func submit(_ work: Work) {
        condition.lock()
        queue.append(work)
        var start = false
        if idle > promised {
            promised += 1
            condition.signal()
        } else if threads < maxThreads {
            threads += 1
            start = true
        }
        let number = threads
        condition.unlock()
        if start {
            Thread.start(named: "\(name)-\(number)") { [self] in serve() }
        }
    }

    /// A thread's life: take work until none has come for `idleTimeout`.
    private func serve() {
        condition.lock()
        while true {
            if head < queue.count {
                let work = queue[head]
                head += 1
                if head == queue.count {
                    queue.removeAll(keepingCapacity: true)
                    head = 0
                } else if head >= 1024 && head * 2 >= queue.count {
                    queue.removeFirst(head)
                    head = 0
                }
                condition.unlock()
                switch work {
                case .job(let job): job.runSynchronously(on: asUnownedTaskExecutor())
                case .closure(let body): body()
                }
                condition.lock()
                continue
            }
            idle += 1
            let signalled = condition.wait(until: Date(timeIntervalSinceNow: idleTimeout))
            idle -= 1
            if promised > 0 { promised -= 1 }
            if !signalled && head >= queue.count {
                threads -= 1
                condition.unlock()
                return
            }
        }
    }
}
