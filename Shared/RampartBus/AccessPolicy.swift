import Foundation
import Synchronization
import RampartProto
import RampartRPC

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
