import Foundation
import RampartProto

/// Whether Rampart holds a backup of the device newer than the one being restored: a warning that
/// `RequestLease` and `CheckRestore` return (the restore goes ahead: the operator may mean the older
/// one). The device's backups come from the backup service (`ListBackups` by owner, newest first: the
/// device's own files and, for a cluster node, the bundles holding its file).
enum NewerBackups {
    /// What the look found.
    enum Lookup: Sendable {
        /// No newer backup.
        case none
        /// The newest backup taken after the one being restored.
        case newer(Rampart_Restore_V1_NewerBackup)
        /// The backups could not be looked at (why).
        case unknown(String)

        /// The newer backup, if one was found.
        var backup: Rampart_Restore_V1_NewerBackup? {
            if case .newer(let backup) = self { return backup }
            return nil
        }
    }

    /// The newest of `backups` (newest first) of device `deviceId` taken after the backup being restored,
    /// which is found among them by its SHA-256 (`archiveSHA256`, the file the device holds); when Rampart
    /// does not hold that file, by its manifest's creation time `createdAt` (whole seconds: a backup of
    /// the same second does not count as newer). Nil when there is none.
    static func newest(
        after archiveSHA256: String, createdAt: Date?, deviceId: String, among backups: [Rampart_Backup_V1_Backup]
    ) -> Rampart_Restore_V1_NewerBackup? {
        // The device's file in each backup: its own, or its member of a cluster bundle.
        let files: [(backup: Rampart_Restore_V1_NewerBackup, sha256: String)] = backups.compactMap { backup in
            var found = Rampart_Restore_V1_NewerBackup()
            found.backupID = backup.id
            found.createdUnixMs = backup.createdUnixMs
            if backup.members.isEmpty {
                guard backup.ownerID == deviceId else { return nil }
                found.fileName = backup.fileName
                return (found, backup.sha256)
            }
            guard let member = backup.members.first(where: { $0.deviceID == deviceId }) else { return nil }
            found.fileName = member.fileName
            found.bundleFileName = backup.fileName
            return (found, member.sha256)
        }
        let restoredAt: Int64
        if let restored = files.first(where: { $0.sha256 == archiveSHA256 }) {
            restoredAt = restored.backup.createdUnixMs
        } else if let createdAt {
            restoredAt = Int64((createdAt.timeIntervalSince1970 * 1000).rounded()) + 999
        } else {
            return nil  // nothing to compare with
        }
        return files.filter { $0.sha256 != archiveSHA256 && $0.backup.createdUnixMs > restoredAt }
            .max { $0.backup.createdUnixMs < $1.backup.createdUnixMs }?.backup
    }
}
