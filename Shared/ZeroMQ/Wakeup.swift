import CZeroMQ
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wakes a thread blocked in `ZMQPoller.poll` from any other thread: a non-blocking eventfd (one file
/// descriptor; a pipe elsewhere, two) that is polled. Used to hand work (replies of handler tasks) to a
/// socket's own thread.
///
/// Creating one never crashes the process: when the process is out of file descriptors (EMFILE) the
/// wakeup has none yet, and `ensureUsable()` — called by every loop before it starts — tries again and
/// throws, so the part that needed it fails with a clear error (and may try later) while the rest of the
/// process goes on.
public final class Wakeup: @unchecked Sendable {
    /// The descriptor to poll and the one to write (the same eventfd on Linux); -1 while none could be made.
    private let descriptors = Atomic<Int64>(-1)
    /// Set by `signal`, cleared by `drain`: while set, another signal need not write.
    private let pending = Atomic<Bool>(false)

    /// Creates the descriptor(s); when it cannot, `ensureUsable()` tries again and says why.
    public init() {
        _ = try? ensureUsable()
    }

    deinit {
        let (read, write) = Self.split(descriptors.load(ordering: .acquiring))
        if read >= 0 { close(read) }
        if write >= 0 && write != read { close(write) }
    }

    /// The descriptor to add to a poller (-1 when the wakeup could not be made).
    public var readDescriptor: Int32 { Self.split(descriptors.load(ordering: .acquiring)).read }

    /// Makes the descriptor(s) if they are not there yet, throwing when that fails (the process out of
    /// file descriptors, most often). Called by the wakeup's own loop thread before it starts.
    public func ensureUsable() throws {
        guard descriptors.load(ordering: .acquiring) < 0 else { return }
        #if os(Linux)
        let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard fd >= 0 else { throw Self.failure(errno) }
        let made = (fd, fd)
        #else
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Self.failure(errno) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        let made = (fds[0], fds[1])
        #endif
        let joined = Int64(made.0) << 32 | Int64(UInt32(bitPattern: made.1))
        if !descriptors.compareExchange(expected: -1, desired: joined, ordering: .acquiringAndReleasing).exchanged {
            close(made.0)
            if made.1 != made.0 { close(made.1) }
        }
    }

    private static func failure(_ code: Int32) -> ZMQError {
        ZMQError(code: code, operation: "a socket thread's wakeup (eventfd)")
    }

    private static func split(_ joined: Int64) -> (read: Int32, write: Int32) {
        joined < 0 ? (-1, -1) : (Int32(truncatingIfNeeded: joined >> 32), Int32(bitPattern: UInt32(truncatingIfNeeded: joined)))
    }

    /// Makes the read end readable; safe from any thread. Only the first signal after a `drain`
    /// writes to the pipe (a full pipe is already a wakeup).
    public func signal() {
        let target = Self.split(descriptors.load(ordering: .acquiring)).write
        guard target >= 0, !pending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt64 = 1
        // 8 bytes: what an eventfd takes (a pipe takes them as well).
        _ = write(target, &one, 8)
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
        let descriptor = readDescriptor
        guard descriptor >= 0 else { return }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buffer in
            while read(descriptor, buffer.baseAddress, buffer.count) == buffer.count {}
        }
        pending.store(false, ordering: .sequentiallyConsistent)
    }
}
