/// Who may call one method, and whether the call is recorded in the audit log (docs/security.md).
/// Declared in proto/ by each rpc's `access` option and generated into the service's API.
public struct MethodPolicy: Sendable, Equatable {
    /// The roles allowed to call it.
    public var roles: Set<BusRole>
    /// Whether every call is recorded in the audit log (refused calls always are).
    public var audited: Bool

    public init(roles: Set<BusRole>, audited: Bool = false) {
        self.roles = roles
        self.audited = audited
    }

    /// Read-only calls: everyone but devices.
    public static let read = MethodPolicy(roles: [.admin, .operator, .viewer, .service])
    /// Operator work (backups, links, deploys, restores): admins, operators and services; audited.
    public static let operate = MethodPolicy(roles: [.admin, .operator, .service], audited: true)
    /// Administration (inventory changes, key rotation, forced releases): admins and services; audited.
    public static let administer = MethodPolicy(roles: [.admin, .service], audited: true)
    /// Calls only Rampart's own services make to each other (uploads, device exports, link checks).
    public static let serviceOnly = MethodPolicy(roles: [.admin, .service])
    /// Device-facing calls: the device itself (the service checks that it is *its own*), services and
    /// admins; audited.
    public static let deviceOwn = MethodPolicy(roles: [.admin, .service, .device], audited: true)
}

/// The policies of a service's methods; a router refuses to register a method that has none.
public struct AccessPolicy: Sendable {
    public var methods: [String: MethodPolicy]

    public init(_ methods: [String: MethodPolicy]) {
        self.methods = methods
    }

    /// The policies of `methods`, by name.
    public init(_ methods: [any RPCMethodDescription]) {
        var table: [String: MethodPolicy] = [:]
        for method in methods {
            precondition(table[method.name] == nil, "\(method.name) declared twice")
            table[method.name] = method.policy
        }
        self.methods = table
    }

    /// The rule of `method`, or nil.
    public subscript(method: String) -> MethodPolicy? { methods[method] }
}
