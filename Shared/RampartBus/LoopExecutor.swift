import Foundation
import Synchronization
import ZeroMQ

/// Runs tasks on a socket thread, between its polls: an event loop as a `TaskExecutor`, as SwiftNIO's
/// event loops are.
///
/// A `BusClient` offers its own (`BusClient.executor`). A caller that makes its calls one after another
/// and prefers it (`Task(executorPreference: client.executor)`) sends from the socket thread itself and is
/// resumed there when the reply arrives: two thread wake-ups fewer per call than from Swift's global pool
/// (docs/benchmarks.md, "Bus round trips"). The caller's own work then runs on the socket thread too, so it suits
/// callers that mostly wait for the bus; work that computes belongs on the global pool.
///
/// Jobs enqueued by the loop thread itself are run in the same loop turn; jobs from other threads wake
/// it. Once the loop has ended, every job (waiting or new) goes to the global concurrent executor, so no
/// task is ever stranded.
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    private struct Shared {
        var jobs: [UnownedJob] = []
        var ended = false
    }

    /// The loop's thread (`pthread_self()`), 0 while no loop runs.
    private let owner = Atomic<UInt>(0)
    private let shared = Mutex(Shared())
    /// Jobs enqueued by the loop thread; touched by that thread only.
    private var local: [UnownedJob] = []
    private let wakeup: Wakeup

    /// An executor for the loop that `wakeup` interrupts. Whoever hands it out starts that loop first:
    /// jobs enqueued before `loopStarted()` wait for it.
    init(wakeup: Wakeup) {
        self.wakeup = wakeup
    }

    /// Whether the calling thread is the loop's.
    var isLoopThread: Bool { owner.load(ordering: .acquiring) == UInt(pthread_self()) }

    func enqueue(_ job: consuming ExecutorJob) {
        if isLoopThread {
            local.append(UnownedJob(job))
            return
        }
        let unowned = UnownedJob(job)
        let accepted = shared.withLock { shared -> Bool in
            guard !shared.ended else { return false }
            shared.jobs.append(unowned)
            return true
        }
        if accepted {
            wakeup.signal()
        } else {
            globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
        }
    }

    /// Marks the calling thread as the loop's; call once, first thing on it.
    func loopStarted() {
        owner.store(UInt(pthread_self()), ordering: .releasing)
    }

    /// Runs every job waiting, and those they enqueue, until none is left; loop thread only.
    func runJobs() {
        while true {
            var jobs = shared.withLock { shared in
                defer { shared.jobs.removeAll(keepingCapacity: true) }
                return shared.jobs
            }
            jobs += local
            local.removeAll(keepingCapacity: true)
            if jobs.isEmpty { return }
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// Ends the loop's part: jobs waiting now or enqueued later go to the global concurrent executor.
    /// Loop thread only, as it ends.
    func loopEnded() {
        let waiting = shared.withLock { shared in
            shared.ended = true
            defer { shared.jobs.removeAll() }
            return shared.jobs
        }
        let mine = local
        local.removeAll()
        owner.store(0, ordering: .releasing)
        for job in waiting + mine { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }
}
