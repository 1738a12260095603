import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wakes a thread blocked in `ZMQPoller.poll` from any other thread: a non-blocking pipe whose
/// read end is polled. Used to hand work (replies of handler tasks) to a socket's own thread.
public final class Wakeup: @unchecked Sendable {
    /// The end to add to a poller.
    public let readDescriptor: Int32
    private let writeDescriptor: Int32
    /// Set by `signal`, cleared by `drain`: while set, another signal need not write to the pipe.
    private let pending = Atomic<Bool>(false)

    /// Creates the pipe.
    public init() {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fatalError("pipe() failed: \(errno)") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readDescriptor = fds[0]
        writeDescriptor = fds[1]
    }

    deinit {
        close(readDescriptor)
        close(writeDescriptor)
    }

    /// Makes the read end readable; safe from any thread. Only the first signal after a `drain`
    /// writes to the pipe (a full pipe is already a wakeup).
    public func signal() {
        guard !pending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Empties the pipe; call on the polling thread before it looks at what it was woken for.
    ///
    /// The pipe is emptied first and the flag cleared after. The other order lost wakeups: a signal
    /// landing between the clearing and the read set the flag again and had its byte read away, so the
    /// flag said "a byte is in the pipe" while none was, and every later signal skipped its write; the
    /// socket thread then slept until its poll timed out (a 2.3 s stall of a service instance's
    /// replies, seen in `bus-bench`; `PollerTests.noLostWakeup`). In this order a signal that skips its
    /// write (the flag still set) came before the clearing, so what it announced is already there when
    /// the caller looks after `drain()` returns; any later signal finds the flag clear and writes.
    /// A loop that polls the read end may call it only when the poll found it readable: when it was
    /// not, no byte was there, and a signal still writing its byte wakes the next poll instead.
    public func drain() {
        // At most one byte is in the pipe (only the signal that finds the flag clear writes), so one
        // read empties it; the loop only guards against a pipe someone else wrote to.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buffer in
            while read(readDescriptor, buffer.baseAddress, buffer.count) == buffer.count {}
        }
        pending.store(false, ordering: .sequentiallyConsistent)
    }
}
