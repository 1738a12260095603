/// The `audit` service's name and method names on the bus, for its callers (the CLI, tests) and for
/// the bus process that hosts it, so that no caller spells them out.
public enum AuditAPI {
    /// The service name on the bus; an instance runs inside the `bus` process.
    public static let serviceName = "audit"

    /// Method names, "rampart.audit.v1.Audit/<Name>".
    public enum Method {
        /// Entries matching a filter, oldest first, a page at a time.
        public static let list = "rampart.audit.v1.Audit/List"
    }
}
