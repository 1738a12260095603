import Foundation
import RampartBasics
import Synchronization
import ZeroMQ

/// Stop flag and wakeup shared between a socket thread and the async world that owns it.
public final class LoopControl: Sendable {
    /// Signalled to interrupt the thread's poll.
    public let wakeup = Wakeup()
    private let stopRequested = Atomic<Bool>(false)

    /// A control that has not been asked to stop.
    public init() {}

    /// Asks the loop to end; it notices at its next poll.
    public func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        wakeup.signal()
    }

    /// Whether `stop()` was called.
    public var isStopRequested: Bool { stopRequested.load(ordering: .sequentiallyConsistent) }
}

/// Frames waiting to be sent by a socket's own thread; any thread may `push`.
public final class Mailbox: Sendable {
    private let queue = Mutex<[[Data]]>([])
    private let wakeup: Wakeup

    /// A mailbox that signals `wakeup` when something arrives.
    public init(wakeup: Wakeup) { self.wakeup = wakeup }

    /// Queues one message and wakes the socket thread (`wake: false` when the caller is the socket
    /// thread itself and sends what is queued before it polls again).
    public func push(_ frames: [Data], wake: Bool = true) {
        queue.withLock { $0.append(frames) }
        if wake { wakeup.signal() }
    }

    /// Takes everything queued, oldest first (socket thread only).
    public func takeAll() -> [[Data]] {
        queue.withLock { queue in
            defer { queue.removeAll(keepingCapacity: true) }
            return queue
        }
    }
}

/// Runs `body` on a new dedicated thread (sockets and blocking calls stay off Swift's cooperative
/// pool) and returns its result; cancelling the awaiting task calls `control.stop()`.
public func runOnDedicatedThread<T: Sendable>(
    name: String, control: LoopControl, _ body: @escaping @Sendable () throws -> T
) async throws -> T {
    try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            Thread.start(named: name, stackSize: 1 << 20) {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
        }
    } onCancel: {
        control.stop()
    }
}

/// Milliseconds since the Unix epoch: the bus's wall clock (deadlines are absolute wall times).
@inlinable
public func unixMillis() -> Int64 {
    Date().unixMillis
}
