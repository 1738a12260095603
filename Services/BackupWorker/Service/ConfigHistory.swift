import Foundation
import Postgres
import RampartConfigDiff
import RampartProto

/// A backup as the task runner hands it over to be recorded: the record, and the fingerprint of the
/// configuration it holds (nil when the archive could not be read for one), stored with it (P17).
struct NewBackup: Sendable {
    var record: Rampart_Backup_V1_Backup
    var fingerprint: ConfigFingerprint?
}

/// The newest backup of an owner (a device, or a cluster for its bundles), which its next backup is
/// compared with (P17).
struct PreviousBackup: Sendable {
    var record: Rampart_Backup_V1_Backup
    /// Nil for a backup recorded before fingerprints were kept, or whose archive could not be read.
    var fingerprint: ConfigFingerprint?

    /// The backup that stored the file this one names (itself, unless it was marked unchanged).
    var storedBy: String { record.unchangedFrom.isEmpty ? record.id : record.unchangedFrom }
}

/// What a new backup's configuration is next to its owner's previous backup (P17). Pure.
enum ConfigComparison: Sendable, Equatable {
    /// Nothing to compare with: no previous backup, or one of the two has no fingerprint.
    case notCompared
    /// Equal once normalised: the new backup shares the previous one's stored file.
    case unchanged(previous: String, storedBy: String)
    /// These files (added, removed or changed) differ.
    case changed(previous: String, files: [String])

    /// `fingerprint` (the new backup's) next to `previous`.
    static func compare(_ fingerprint: ConfigFingerprint?, with previous: PreviousBackup?) -> ConfigComparison {
        guard let previous, let old = previous.fingerprint, let fingerprint else { return .notCompared }
        let files = fingerprint.changedPaths(since: old)
        return files.isEmpty
            ? .unchanged(previous: previous.record.id, storedBy: previous.storedBy)
            : .changed(previous: previous.record.id, files: files)
    }

    /// `record` with what the comparison says: the previous backup's id, the changed files, and for an
    /// unchanged configuration the previous backup's stored file (name, size, SHA-256, object, members)
    /// in place of the one not stored.
    func applied(to record: Rampart_Backup_V1_Backup, previous: PreviousBackup?) -> Rampart_Backup_V1_Backup {
        var record = record
        switch self {
        case .notCompared:
            record.previousBackupID = previous?.record.id ?? ""
        case .changed(let id, let files):
            record.previousBackupID = id
            record.changedFiles = files
        case .unchanged(let id, let storedBy):
            guard let stored = previous?.record else { return record }
            record.previousBackupID = id
            record.unchangedFrom = storedBy
            record.fileName = stored.fileName
            record.size = stored.size
            record.sha256 = stored.sha256
            record.objectID = stored.objectID
            record.members = stored.members
        }
        return record
    }

    /// A cluster bundle's fingerprint from its nodes' (node name → fingerprint): "<node>/<path>" → digest.
    static func bundle(_ nodes: [String: ConfigFingerprint]) -> ConfigFingerprint {
        var files: [String: String] = [:]
        for (node, fingerprint) in nodes {
            for (path, digest) in fingerprint.files { files[node + "/" + path] = digest }
        }
        return ConfigFingerprint(files: files)
    }

    /// The changed files of a backup, by device: a bundle's "<node>/<path>" entries split by node name, for
    /// the nodes it holds (`members`); a device's own files under its own name.
    static func changedByDevice(_ record: Rampart_Backup_V1_Backup) -> [(id: String, name: String, files: [String])] {
        guard !record.changedFiles.isEmpty else { return [] }
        guard record.clusterID.isEmpty || record.members.isEmpty else {
            var byNode: [String: [String]] = [:]
            for entry in record.changedFiles {
                guard let slash = entry.firstIndex(of: "/") else { continue }
                byNode[String(entry[..<slash]), default: []].append(String(entry[entry.index(after: slash)...]))
            }
            // The nodes the new bundle holds: a node left out (B10: its export failed) did not change its
            // configuration, though the bundle differs.
            return record.members.compactMap { node in byNode[node.deviceName].map { (node.deviceID, node.deviceName, $0) } }
        }
        return [(record.ownerID, record.ownerName, record.changedFiles)]
    }
}

extension BackupStore {
    /// The newest backup of `owner` (device or cluster id), with its fingerprint.
    static func previousBackup(of owner: String, on connection: PostgresConnection) throws -> PreviousBackup? {
        guard let row = try connection.query(
            """
            SELECT \(unsafeRaw: backupFields), fingerprint::text AS fingerprint
            FROM backup.backups WHERE owner_id = \(owner) ORDER BY created_at DESC, id DESC LIMIT 1
            """
        ).first else { return nil }
        let text: String? = try row.decodeIfPresent("fingerprint", as: String.self)
        return PreviousBackup(
            record: try backup(from: row),
            fingerprint: try text.map { try JSONDecoder().decode(ConfigFingerprint.self, from: Data($0.utf8)) })
    }
}
