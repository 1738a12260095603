/// Words of the restore API that its messages carry as strings: checklist items and lease steps, for the
/// coordinator, device agents and the CLI alike.
extension RestoreAPI {
    /// Checklist item keys (R13), in the order an operator does them.
    public enum Item {
        public static let reenrollVPNCertificates = "reenroll-vpn-certificates"
        public static let resumeHaSync = "resume-ha-sync"
        public static let resolveLicensing = "resolve-licensing"
        public static let reconfigure = "reconfigure"
        public static let deploy = "deploy"
        public static let connectDataInterfaces = "connect-data-interfaces"
    }

    /// Steps a device reports under its lease, in order.
    public enum Step {
        public static let granted = "granted"
        public static let applying = "applying"
        public static let applied = "applied"
        public static let rebooting = "rebooting"
        public static let rejoined = "rejoined"
    }
}
