import RampartProto

/// The status of a failed call, as carried by every bus reply (after grpc-swift's `RPCError`):
/// a canonical code, a message for people, and an optional underlying cause kept out of the message.
public struct RPCError: Error, CustomStringConvertible, Sendable {
    /// The canonical code. `unavailable` means nothing was done and the same call may be sent again
    /// (`BusClient` does so for idempotent calls); the other codes need a different request or a look.
    public var code: Rampart_Bus_V1_StatusCode
    /// What went wrong, for a person; never holds secrets.
    public var message: String
    /// The error that caused this one, for logs (`debugDescription`), never sent on the wire.
    public var cause: (any Error)?

    /// An error with `code` and `message`.
    public init(_ code: Rampart_Bus_V1_StatusCode, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { "\(code.name): \(message)" }

    /// The message plus its cause, for logs.
    public var debugDescription: String {
        cause.map { "\(description) (cause: \($0))" } ?? description
    }

    /// Whether the same call may be sent again unchanged (for idempotent calls).
    public var isRetryable: Bool { code == .unavailable }

    public static func invalidArgument(_ message: String) -> RPCError { RPCError(.invalidArgument, message) }
    public static func notFound(_ message: String) -> RPCError { RPCError(.notFound, message) }
    public static func alreadyExists(_ message: String) -> RPCError { RPCError(.alreadyExists, message) }
    public static func permissionDenied(_ message: String) -> RPCError { RPCError(.permissionDenied, message) }
    public static func failedPrecondition(_ message: String) -> RPCError { RPCError(.failedPrecondition, message) }
    public static func unavailable(_ message: String) -> RPCError { RPCError(.unavailable, message) }
    public static func internalError(_ message: String) -> RPCError { RPCError(.internal, message) }
}

/// A domain error that knows its bus status; anything else a handler throws becomes `INTERNAL`.
public protocol RPCErrorConvertible: Error {
    /// The status to send to the caller.
    var rpcError: RPCError { get }
}

extension RPCError: RPCErrorConvertible {
    public var rpcError: RPCError { self }
}

extension Rampart_Bus_V1_StatusCode {
    /// The canonical upper-case name ("NOT_FOUND").
    public var name: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        case .UNRECOGNIZED(let value): "UNRECOGNIZED(\(value))"
        }
    }
}
