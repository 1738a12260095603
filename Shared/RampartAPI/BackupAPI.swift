/// The `backup` service's name and the method names its callers outside the backup worker's own module
/// use (the restore coordinator's look for newer backups), so that no caller spells them out.
public enum BackupAPI {
    /// The service name on the bus.
    public static let serviceName = "backup"

    /// Method names, "rampart.backup.v1.Backup/<Name>".
    public enum Method {
        static let prefix = "rampart.backup.v1.Backup/"
        /// Backups, newest first; by owner, a cluster node's included (its cluster's bundles).
        public static let listBackups = prefix + "ListBackups"
    }
}
