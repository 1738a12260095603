/// The `storage` service's name and method names on the bus, for its callers (backup workers, the CLI,
/// tests walking every method) and the service itself, so that no caller spells them out.
public enum StorageAPI {
    /// The service name on the bus.
    public static let serviceName = "storage"

    /// Method names, "rampart.storage.v1.Storage/<Name>".
    public enum Method {
        static let prefix = "rampart.storage.v1.Storage/"
        /// Starts an upload (backup workers).
        public static let beginUpload = prefix + "BeginUpload"
        /// One chunk of an upload, by offset.
        public static let uploadChunk = prefix + "UploadChunk"
        /// Seals the upload into an object named by its SHA-256.
        public static let commitUpload = prefix + "CommitUpload"
        /// Drops an upload and its partial file.
        public static let abortUpload = prefix + "AbortUpload"
        /// One object's size, hash and state.
        public static let statObject = prefix + "StatObject"
        /// A range of an object's plain bytes (a backup download over the bus).
        public static let readObject = prefix + "ReadObject"
        /// Objects, by id.
        public static let listObjects = prefix + "ListObjects"
        /// Deletes an object (pruning).
        public static let deleteObject = prefix + "DeleteObject"
        /// Checks objects against their hashes.
        public static let verify = prefix + "Verify"

        /// Every method, for tests that walk them all.
        public static let all = [
            beginUpload, uploadChunk, commitUpload, abortUpload, statObject, readObject, listObjects, deleteObject, verify,
        ]
    }
}
