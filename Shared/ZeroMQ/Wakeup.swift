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
    public func drain() {
        // Always read: a signal may have set the flag before this and written after it.
        pending.store(false, ordering: .sequentiallyConsistent)
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readDescriptor, &buffer, buffer.count) > 0 {}
    }
}
