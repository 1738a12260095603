import RampartAudit
import RampartBus

extension AuditRecord {
    /// The record of one routed call: who (the broker-authenticated key, name and role), what and how
    /// it ended, as `ServiceRouter` reports it.
    public init(_ event: AuditEvent) {
        self.init(
            callerKey: event.caller.key, callerName: event.caller.name, callerRole: event.keyRevoked ? "" : event.caller.role.rawValue,
            service: event.service, method: event.method, subject: event.subject, outcome: event.outcome,
            message: event.message, details: event.keyRevoked ? event.details.merging(["key": "revoked"]) { $1 } : event.details)
    }
}

extension AuditLog {
    /// What a service sets as `ServiceRouter.auditor`: every audited or refused call is appended here.
    public var auditor: Auditor {
        { [self] event in await append(AuditRecord(event)) }
    }
}

extension ServiceRouter {
    /// The same router, recording its audited and refused calls in `log`.
    public func auditing(into log: AuditLog) -> ServiceRouter {
        var router = self
        router.auditor = log.auditor
        return router
    }
}
