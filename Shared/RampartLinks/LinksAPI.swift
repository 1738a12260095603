/// The `link-signer` service's name and method names on the bus, for its callers (storage, the CLI)
/// and for the service itself, so that no caller spells them out.
public enum LinksAPI {
    /// The service name on the bus.
    public static let serviceName = "link-signer"
    /// The path every download URL starts with: `/v1/backups/<backup id>/<file name>`.
    public static let downloadPathPrefix = "/v1/backups/"

    /// Method names, "rampart.links.v1.Links/<Name>".
    public enum Method {
        static let prefix = "rampart.links.v1.Links/"
        /// Signs one URL per backup file of a selector; records the export.
        public static let exportBackupLinks = prefix + "ExportBackupLinks"
        /// Checks a download request (asked by storage's HTTP endpoint for every request).
        public static let verifyLink = prefix + "VerifyLink"
        /// The signing keys, active and retired, without their secrets.
        public static let listKeys = prefix + "ListKeys"
        /// Makes a new active key; the old one verifies until its last link expires.
        public static let rotateKey = prefix + "RotateKey"
        /// Recent exports: who, when, which backups.
        public static let listExports = prefix + "ListExports"
    }

    /// The decoded download path of a backup's file.
    public static func downloadPath(backupId: String, fileName: String) -> String {
        downloadPathPrefix + backupId + "/" + fileName
    }
}
