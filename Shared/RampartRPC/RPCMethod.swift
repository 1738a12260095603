import SwiftProtobuf

/// What every method descriptor tells, whatever its message types: for tables of a service's methods.
public protocol RPCMethodDescription: Sendable {
    /// "package.Service/Method", e.g. "rampart.inventory.v1.Inventory/GetDevice".
    var name: String { get }
    /// The bus service that serves it ("inventory"); "" for a service served under one name per
    /// instance (each device agent's `Device`, as "device/<device id>").
    var service: String { get }
    /// Who may call it, and whether calls are audited.
    var policy: MethodPolicy { get }
}

/// One method of a bus service, typed: its name, the messages it takes and returns, and who may call
/// it. Each service's methods are declared once, by the `service` blocks in proto/, and generated into
/// `RampartAPI` (dev/generate-protos.sh); the router that serves a method, the access policy that
/// guards it and every caller use the same descriptor, so that no name is spelled twice.
public struct RPCMethod<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: RPCMethodDescription {
    public let name: String
    public let service: String
    public let policy: MethodPolicy

    public init(service: String, name: String, policy: MethodPolicy) {
        self.service = service
        self.name = name
        self.policy = policy
    }
}

/// A service's declared API: its bus name and every method's policy (generated for each `service`
/// block in proto/).
public protocol RPCServiceAPI {
    /// The name the service is served under ("inventory"); "" when each instance has its own.
    static var serviceName: String { get }
    /// Every method, in the order the proto declares them.
    static var methods: [any RPCMethodDescription] { get }
}

extension RPCServiceAPI {
    /// Who may call what, from the declared methods.
    public static var policy: AccessPolicy { AccessPolicy(methods) }
}

/// Something that sends a request to a bus service and waits for its answer (the bus client; a test's
/// in-process router). Typed calls (`RPCMethod`, the generated clients) go through it.
public protocol RPCCaller: Sendable {
    /// Calls `method` of `service` with `request` and decodes the answer as `Response`; throws the
    /// service's error. `idempotent`: safe to send again when the service could not be reached.
    func call<Response: SwiftProtobuf.Message>(
        service: String, method: String, _ request: some SwiftProtobuf.Message, as: Response.Type,
        timeout: Duration, idempotent: Bool, metadata: [String: String]
    ) async throws -> Response
}

extension RPCCaller {
    /// Calls `method` with `request`; `service` overrides the method's own (a device's "device/<id>").
    public func call<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, service: String? = nil,
        timeout: Duration = .seconds(5), idempotent: Bool = false, metadata: [String: String] = [:]
    ) async throws -> Response {
        let target = service ?? method.service
        precondition(!target.isEmpty, "\(method.name) is served under one name per instance: pass `service:`")
        return try await call(
            service: target, method: method.name, request, as: Response.self, timeout: timeout,
            idempotent: idempotent, metadata: metadata)
    }
}
