import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A libzmq context. Thread-safe; one per process is enough (`ZMQContext.shared`).
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// The process-wide context, created on first use and never terminated.
    public static let shared = ZMQContext()

    /// Creates a context with `ioThreads` background I/O threads, allowed as many sockets as the process
    /// may open files (`socketLimit`).
    public init(ioThreads: Int32 = 1) {
        guard let handle = zmq_ctx_new() else { fatalError("zmq_ctx_new failed: out of memory") }
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        zmq_ctx_set(handle, ZMQ_BLOCKY, 0)
        zmq_ctx_set(
            handle, ZMQ_MAX_SOCKETS,
            Self.socketLimit(files: OpenFiles.raiseToHardLimit(), libzmqLimit: zmq_ctx_get(handle, ZMQ_SOCKET_LIMIT)))
        self.handle = handle
    }

    /// The sockets this context may open (`zmq_ctx_get(ZMQ_MAX_SOCKETS)`).
    public var maxSockets: Int32 { zmq_ctx_get(handle, ZMQ_MAX_SOCKETS) }

    /// How many sockets a context may hold: libzmq's default is 1,023 whatever the process may open (a
    /// fleet of simulated devices stopped there), so the limit is the process's open-file limit — every
    /// socket holds at least one descriptor, so more could never be opened anyway — within libzmq's own
    /// ceiling, and never below the default. (The soft open-file limit is raised to the hard one first:
    /// `OpenFiles.raiseToHardLimit()`.)
    static func socketLimit(files: Int, libzmqLimit: Int32) -> Int32 {
        let ceiling = libzmqLimit > 0 ? Int(libzmqLimit) : Int(Int32.max)
        return Int32(max(Int(ZMQ_MAX_SOCKETS_DFLT), min(files, ceiling)))
    }

    /// The libzmq version, e.g. "4.3.4".
    public static var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Whether libzmq was built with the named capability ("curve", "ipc", ...).
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) == 1
    }
}

/// The process's limit on open file descriptors (RLIMIT_NOFILE).
public enum OpenFiles {
    /// Raises the soft limit to the hard limit (a process may, without privilege) and returns the soft
    /// limit in force after it. Services and the device simulator hold a few descriptors per connection
    /// or simulated device; the usual soft limit of 1,024 would stop them long before the machine does.
    @discardableResult
    public static func raiseToHardLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur == rlim_t.max ? Int(Int32.max) : Int(clamping: limit.rlim_cur)
    }
}
