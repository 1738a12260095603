import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error reported by libzmq: the failed operation and its `errno`.
public struct ZMQError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The `errno` value libzmq left.
    public var code: Int32
    /// What was being done ("bind tcp://127.0.0.1:5555").
    public var operation: String

    /// Captures the current `zmq_errno()` for `operation`.
    public static func last(_ operation: String) -> ZMQError {
        ZMQError(code: zmq_errno(), operation: operation)
    }

    /// Nothing to receive or no room to send without blocking.
    public var isWouldBlock: Bool { code == EAGAIN }
    /// A signal interrupted the call; it should be retried.
    public var isInterrupted: Bool { code == EINTR }
    /// The context was terminated.
    public var isTerminated: Bool { code == ETERM }

    public var description: String {
        "\(operation): \(String(cString: zmq_strerror(code)))"
    }
}
