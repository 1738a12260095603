import Foundation
import Logging
import RampartProto
import RampartRPC
import SwiftProtobuf

/// What a handler knows about the call it serves.
public struct RequestContext: Sendable {
    /// The caller's request id.
    public var requestId: UInt64
    /// "package.Service/Method".
    public var method: String
    /// Absolute deadline, milliseconds since the epoch (0 = none).
    public var deadlineUnixMs: Int64
    /// Caller metadata ("caller", "trace-id"); self-declared, never trusted.
    public var metadata: [String: String]
    /// A logger carrying the method, request id, trace id and caller, made when asked for: setting a
    /// logger's metadata makes `StreamLogHandler` format all of it at once, about 3 µs per request —
    /// most of which never log (docs/benchmarks.md, "Bus round trips").
    public var logger: Logger {
        Self.logger(baseLogger, method: method, requestId: requestId, caller: identity.name, traceId: metadata["trace-id"])
    }
    private let baseLogger: Logger
    /// Who is calling: the identity the broker authenticated (in plain mode: an admin named as the
    /// caller named itself).
    public var identity: CallerIdentity
    /// What the handler wants recorded with this call in the audit log.
    public var audit: AuditNotes

    public init(
        requestId: UInt64, method: String, deadlineUnixMs: Int64, metadata: [String: String], logger: Logger,
        identity: CallerIdentity, audit: AuditNotes = AuditNotes()
    ) {
        self.requestId = requestId
        self.method = method
        self.deadlineUnixMs = deadlineUnixMs
        self.metadata = metadata
        self.baseLogger = logger
        self.identity = identity
        self.audit = audit
    }

    /// `base` with a request's metadata.
    static func logger(_ base: Logger, method: String, requestId: UInt64, caller: String, traceId: String?) -> Logger {
        var logger = base
        // Set in one go: a handler such as `StreamLogHandler` formats all of its metadata on every change.
        var metadata = logger.handler.metadata
        metadata["method"] = "\(method)"
        metadata["request-id"] = "\(requestId)"
        metadata["caller"] = "\(caller)"
        if let traceId { metadata["trace-id"] = "\(traceId)" }
        logger.handler.metadata = metadata
        return logger
    }

    /// Who called, for records ("alice"; in plain mode the self-declared name, "rampart-cli@host").
    public var caller: String { identity.name }

    /// Refuses a device caller unless `deviceName` is its own device (the `device` role may only act
    /// for itself: docs/security.md).
    public func requireOwnDevice(_ deviceName: String) throws {
        guard identity.role == .device else { return }
        guard identity.name == deviceName else {
            throw RPCError.permissionDenied(
                "device key '\(identity.name)' may act only for its own device, not for '\(deviceName)'")
        }
    }
}

/// The methods a service serves: protobuf request in, protobuf response out, errors as `RPCError`.
/// Every method has an access policy (the roles that may call it; whether it is audited), checked
/// before its handler runs.
public struct ServiceRouter: Sendable {
    /// A decoded-payload handler.
    public typealias Handler = @Sendable (Data, RequestContext) async throws -> Data

    private(set) var handlers: [String: Handler] = [:]
    private var pooled: Set<String> = []
    /// Who may call what.
    public let policy: AccessPolicy
    /// The service name written in audit records ("inventory").
    public var serviceName: String
    /// Where audited and refused calls are recorded; nil: only the log.
    public var auditor: Auditor?

    /// An empty router for `serviceName`, its methods governed by `policy`.
    public init(serviceName: String, policy: AccessPolicy) {
        self.serviceName = serviceName
        self.policy = policy
    }

    /// An empty router for a declared service: its bus name and its methods' policies.
    public init<API: RPCServiceAPI>(for api: API.Type) {
        self.init(serviceName: API.serviceName, policy: API.policy)
    }

    /// Serves `method` (a descriptor of the service's generated API, e.g. `InventoryAPI.listDevices`)
    /// with `body`. The method must be in the router's policy.
    ///
    /// `ServiceHost` starts a request on the socket thread that received it and runs it there up to its
    /// first suspension (`SocketThreadExecutor`). A handler that computes or blocks for long before it
    /// first awaits (builds an archive, hashes a file, signs thousands of links) passes `offSocketThread:
    /// true` and runs on the process's `BlockingPool` from its start, so that neither the instance's
    /// socket (other requests, heartbeats) nor Swift's cooperative pool ever waits for it.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>, offSocketThread: Bool = false,
        _ body: @escaping @Sendable (Request, RequestContext) async throws -> Response
    ) {
        let name = method.name
        precondition(handlers[name] == nil, "\(name) registered twice")
        precondition(policy[name] != nil, "\(name) has no access policy: add it to the service's policy")
        if offSocketThread { pooled.insert(name) }
        handlers[name] = { payload, context in
            let request: Request
            do {
                request = try Request(serializedBytes: payload)
            } catch {
                throw RPCError.invalidArgument("payload is not a valid \(Request.protoMessageName)")
            }
            return FrameCodec.serialize(try await body(request, context))
        }
    }

    /// Whether `method` was registered `offSocketThread` (an unknown method is answered on the socket thread).
    public func runsOffSocketThread(_ method: String) -> Bool { pooled.contains(method) }

    /// The registered method names.
    public var methods: [String] { handlers.keys.sorted() }

    /// Who a request comes from: the identity the broker put in its header; without one, in an
    /// authenticated deployment the request came from inside the bus process (inproc, "bus"), and in
    /// plain mode everyone is an admin under the name it gave itself.
    public static func identity(of header: Rampart_Bus_V1_RequestHeader, authenticated: Bool) -> CallerIdentity {
        if header.hasCaller, let identity = CallerIdentity(header.caller) { return identity }
        if authenticated { return CallerIdentity(key: "", name: "bus", role: .service) }
        return CallerIdentity(key: "", name: header.metadata["caller"] ?? "unknown", role: .admin)
    }

    /// Runs the handler of `header.method`, turning every outcome into a reply header and payload.
    /// `authenticated`: whether this instance talks CURVE to the broker (so callers are authenticated).
    public func handle(
        header: Rampart_Bus_V1_RequestHeader, payload: Data, instanceId: String, logger: Logger,
        authenticated: Bool = false
    ) async -> (Rampart_Bus_V1_ReplyHeader, Data) {
        let identity = Self.identity(of: header, authenticated: authenticated)
        // Made only for the few requests that log here (refused, failed): see `RequestContext.logger`.
        var requestLogger: Logger {
            RequestContext.logger(
                logger, method: header.method, requestId: header.requestID, caller: identity.name,
                traceId: header.metadata["trace-id"])
        }
        func reply(_ status: Rampart_Bus_V1_StatusCode, _ message: String) -> Rampart_Bus_V1_ReplyHeader {
            FrameCodec.replyHeader(requestId: header.requestID, status: status, message: message, answeredBy: instanceId)
        }
        guard let handler = handlers[header.method], let rule = policy[header.method] else {
            return (reply(.unimplemented, "this service has no method '\(header.method)'"), Data())
        }
        let notes = AuditNotes()
        func record(_ status: Rampart_Bus_V1_StatusCode, _ message: String) async {
            guard let auditor else { return }
            await auditor(
                AuditEvent(
                    time: Date(), caller: identity, service: serviceName, method: header.method, subject: notes.subject,
                    outcome: status, message: message, details: notes.details))
        }
        guard rule.roles.contains(identity.role) else {
            let allowed = rule.roles.sorted().map(\.rawValue).joined(separator: ", ")
            let message = "role '\(identity.role.rawValue)' of '\(identity.name)' may not call \(header.method) (allowed: \(allowed))"
            requestLogger.warning("call refused", metadata: ["role": "\(identity.role.rawValue)", "key": "\(identity.shortKey)"])
            await record(.permissionDenied, message)
            return (reply(.permissionDenied, message), Data())
        }
        if header.deadlineUnixMs > 0, header.deadlineUnixMs <= unixMillis() {
            return (reply(.deadlineExceeded, "the deadline passed before the request could start"), Data())
        }
        let context = RequestContext(
            requestId: header.requestID, method: header.method, deadlineUnixMs: header.deadlineUnixMs,
            metadata: header.metadata, logger: logger, identity: identity, audit: notes)
        do {
            let response = try await handler(payload, context)
            if rule.audited { await record(.ok, "") }
            return (reply(.ok, ""), response)
        } catch let error as any RPCErrorConvertible {
            let rpc = error.rpcError
            if rpc.code == .internal || rpc.code == .unavailable || rpc.code == .dataLoss {
                requestLogger.error("request failed", metadata: ["error": "\(rpc.debugDescription)"])
            } else if rpc.code == .resourceExhausted {
                // Out of something the operator provides (disk, a device's export slots): said, with its cause.
                requestLogger.warning("request refused: a resource ran out", metadata: ["error": "\(rpc.debugDescription)"])
            } else if logger.logLevel <= .debug {  // refusals are common: no logger made for nothing
                requestLogger.debug("request refused", metadata: ["error": "\(rpc.description)"])
            }
            if rule.audited || rpc.code == .permissionDenied { await record(rpc.code, rpc.message) }
            return (reply(rpc.code, rpc.message), Data())
        } catch {
            requestLogger.error("request failed with an unexpected error", metadata: ["error": "\(error)"])
            let message = "internal error while serving \(header.method); see the service's log"
            if rule.audited { await record(.internal, message) }
            return (reply(.internal, message), Data())
        }
    }
}
