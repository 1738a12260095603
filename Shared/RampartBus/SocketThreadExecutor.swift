import Foundation
import Synchronization

/// The executor a service instance prefers for its request tasks: it runs the *first slice* of each
/// request's task — up to its first suspension — on the socket thread that received the request, in the
/// same loop turn, and hands everything else to Swift's global concurrent executor.
///
/// A handler that answers without suspending (a lookup in memory, a refusal after validation) then costs
/// no thread hand-off at all: its reply is in the mailbox before the socket thread polls again. Before,
/// every request woke a pool thread and every reply woke the socket thread back (docs/benchmarks.md,
/// "Bus round trips"). A handler that awaits the database suspends there and goes on in the pool as before, and so
/// does every child task it starts and every task it resumes: only jobs enqueued by the socket thread
/// while it is starting a request (`accepting`) stay on it, so a handler's parallel work stays parallel.
///
/// The cost: a handler's synchronous work before its first `await` holds the instance's socket for its
/// length. Handlers here do little before their first `await`; a long computation belongs behind one.
final class SocketThreadExecutor: TaskExecutor, @unchecked Sendable {
    /// The socket thread: the one that created the executor.
    private let owner = pthread_self()
    // Touched by the owner thread only (every access checks `isOwnerThread` first).
    private var accepting = false
    private var local: [UnownedJob] = []

    /// An executor owned by the calling thread, which must be the socket thread.
    init() {}

    /// Whether the calling thread is the socket thread.
    var isOwnerThread: Bool { pthread_equal(pthread_self(), owner) != 0 }

    func enqueue(_ job: consuming ExecutorJob) {
        if isOwnerThread && accepting {
            local.append(UnownedJob(job))
        } else {
            globalConcurrentExecutor.enqueue(job)
        }
    }

    /// Calls `start` (which creates request tasks preferring this executor) so that the first job of
    /// each task it creates is kept for `runAccepted()`. Socket thread only.
    func accepting<T>(_ start: () throws -> T) rethrows -> T {
        precondition(isOwnerThread, "SocketThreadExecutor.accepting called off its socket thread")
        accepting = true
        defer { accepting = false }
        return try start()
    }

    /// Runs the jobs kept by `accepting(_:)`, oldest first, on this (the socket) thread.
    func runAccepted() {
        precondition(isOwnerThread, "SocketThreadExecutor.runAccepted called off its socket thread")
        while !local.isEmpty {
            let jobs = local
            local.removeAll(keepingCapacity: true)
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }
}
