/// The `restore-coordinator` service's name and method names on the bus, for its callers (device
/// agents, the CLI) and the service itself, so that no caller spells them out.
public enum RestoreAPI {
    /// The service name on the bus.
    public static let serviceName = "restore-coordinator"

    /// Method names, "rampart.restore.v1.Restore/<Name>".
    public enum Method {
        static let prefix = "rampart.restore.v1.Restore/"
        /// A replacement device asks to restore a backup: a lease with a fencing token, or a refusal naming what differs.
        public static let requestLease = prefix + "RequestLease"
        /// RequestLease's checks, one by one, granting and recording nothing (the device CLI's `check`).
        public static let checkRestore = prefix + "CheckRestore"
        /// The device reports a step (and so renews its lease).
        public static let reportStep = prefix + "ReportStep"
        /// The device rebooted and reconnected as the restored device: the lease ends.
        public static let reportRejoined = prefix + "ReportRejoined"
        /// The restore failed on the device before anything was written: the lease ends.
        public static let reportFailed = prefix + "ReportFailed"
        /// An operator ends an active lease by force, with a reason (audited).
        public static let releaseLease = prefix + "ReleaseLease"
        /// One lease.
        public static let getLease = prefix + "GetLease"
        /// Leases, newest first (status and history).
        public static let listLeases = prefix + "ListLeases"
        /// A restored device's checklist (R13).
        public static let getChecklist = prefix + "GetChecklist"
        /// Ticks off a checklist item by hand.
        public static let completeItem = prefix + "CompleteItem"
        /// Deploys to a device: clears its out-of-date flag (R13).
        public static let deploy = prefix + "Deploy"
        /// Resumes HA synchronisation of a pair (R13).
        public static let resumeHaSync = prefix + "ResumeHaSync"
    }

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
