import RampartAPI
import RampartAudit
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC

/// The `audit` service (P9): reads the append-only audit log for `rampart audit`. Hosted
/// inside the bus process over the inproc endpoint, like `bus.journal`; writes happen in the services.
enum AuditService {
    /// The router serving `rampart.audit.v1.Audit/List` from `log`.
    static func router(log: AuditLog) -> ServiceRouter {
        var router = ServiceRouter(for: AuditAPI.self)
        router.register(AuditAPI.list) { (request: Rampart_Audit_V1_ListAuditRequest, _) in
            let page: AuditLog.Page
            do {
                page = try await database { try await log.list(try AuditFilter(request)) }
            } catch let error as AuditFilterError {
                throw RPCError.invalidArgument(error.message)
            }
            var response = Rampart_Audit_V1_ListAuditResponse()
            response.entries = page.entries.map(\.proto)
            response.more = page.more
            return response
        }
        return router.auditing(into: log)
    }
}
