import Foundation
import Synchronization
import RampartProto

/// Who may call one method, and whether the call is recorded in the audit log (docs/security.md).
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

    /// The same policy, audited.
    public var auditedToo: MethodPolicy { MethodPolicy(roles: roles, audited: true) }
    /// The same policy, not audited (frequent calls whose effect other records already show).
    public var notAudited: MethodPolicy { MethodPolicy(roles: roles, audited: false) }
}

/// The policies of a service's methods; a router refuses to register a method that has none.
public struct AccessPolicy: Sendable {
    public var methods: [String: MethodPolicy]

    public init(_ methods: [String: MethodPolicy]) {
        self.methods = methods
    }

    /// The rule of `method`, or nil.
    public subscript(method: String) -> MethodPolicy? { methods[method] }
}

/// What a handler adds to its call's audit record: what the call was about and a few facts.
public final class AuditNotes: Sendable {
    private let state = Mutex<(subject: String, details: [String: String])>(("", [:]))

    public init() {}

    /// What the call is about (a device id, job id, backup id, pair id, ...).
    public var subject: String {
        get { state.withLock { $0.subject } }
        set { state.withLock { $0.subject = newValue } }
    }

    /// Small facts ("backups": "3", "reason": "RMA 1234").
    public var details: [String: String] { state.withLock { $0.details } }

    /// Sets one fact.
    public func note(_ key: String, _ value: String) {
        state.withLock { $0.details[key] = value }
    }
}

/// One call to record in the audit log: built by the router, written by the service's `Auditor`.
public struct AuditEvent: Sendable {
    public var time: Date
    public var caller: CallerIdentity
    /// The service that served the call ("inventory").
    public var service: String
    public var method: String
    public var subject: String
    public var outcome: Rampart_Bus_V1_StatusCode
    public var message: String
    public var details: [String: String]
    /// The caller's key was authorized once and is no longer: `caller` holds only the key (its name
    /// and role are gone with it).
    public var keyRevoked: Bool

    public init(
        time: Date, caller: CallerIdentity, service: String, method: String, subject: String,
        outcome: Rampart_Bus_V1_StatusCode, message: String, details: [String: String], keyRevoked: Bool = false
    ) {
        self.keyRevoked = keyRevoked
        self.time = time
        self.caller = caller
        self.service = service
        self.method = method
        self.subject = subject
        self.outcome = outcome
        self.message = message
        self.details = details
    }
}

/// Writes audit events somewhere durable (RampartAudit's `AuditLog` in the services). Must not throw:
/// a failure to record is logged by the writer.
public typealias Auditor = @Sendable (AuditEvent) async -> Void
