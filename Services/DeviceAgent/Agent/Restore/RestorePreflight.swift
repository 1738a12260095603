import Foundation
import RampartArchive

/// A backup that passed every check the device makes before asking for a lease.
public struct VerifiedBackup: Sendable {
    /// The archive read back: manifest, manifest.json as stored, files (member hashes verified).
    public var contents: BackupArchive.Contents
    /// SHA-256 of the whole archive file, lower-case hex.
    public var archiveSHA256: String
    /// The archive's file name.
    public var fileName: String
    /// The archive's size in bytes.
    public var byteCount: Int
    /// The device id in the backup's manager-registration.json (equal to the manifest's).
    public var deviceId: String
    /// The manager id in the backup's manager-registration.json (equal to the manifest's).
    public var managerId: String

    /// The manifest.
    public var manifest: BackupManifest { contents.manifest }
}

/// The checks a device makes on a backup before it asks for a restore lease (docs/rules.md#archives, R3, R4, R8):
/// the archive opens and every member matches its SHA-256 in the manifest; nothing would land outside
/// the configuration folder (RampartArchive refuses `..`, absolute paths, links, devices, FIFOs); a
/// cluster bundle is refused with a pointer to `rampart backups extract`; the device's own hardware
/// and software match the manifest. Nothing is written by any of them.
public enum RestorePreflight {
    /// Verifies `data` (the archive named `fileName`) for the device with `facts`. Throws
    /// `RestoreError` naming what is wrong (each fact that differs, the member that is refused).
    public static func verify(_ data: Data, fileName: String, device facts: DeviceFacts) throws(RestoreError)
        -> VerifiedBackup
    {
        try refuseClusterBundle(data, fileName: fileName)
        let contents: BackupArchive.Contents
        do {
            contents = try BackupArchive.read(data)
        } catch let error as ArchiveError {
            throw RestoreError(
                .archive(error.code), "the archive \(fileName) is refused: \(error.message); nothing was written")
        } catch {
            throw RestoreError(
                .archive(.badHeader), "the archive \(fileName) is refused: \(error); nothing was written")
        }
        let manifest = contents.manifest
        if let encrypted = contents.files.first(where: { $0.path.hasSuffix(DeviceFolder.encryptedKeySuffix) }) {
            throw RestoreError(
                .backupContents,
                "the backup holds an encrypted private key (\(encrypted.path)); a backup holds private keys decrypted "
                    + "(B12), so this one cannot be restored")
        }
        let registration = try registration(in: contents)
        guard !manifest.deviceId.isEmpty, registration.deviceId == manifest.deviceId else {
            throw RestoreError(
                .backupContents,
                "the backup's manager-registration.json names device '\(registration.deviceId)' but its manifest names "
                    + "'\(manifest.deviceId)': the backup is inconsistent and is not restored")
        }
        guard !manifest.managerId.isEmpty, registration.managerId == manifest.managerId else {
            throw RestoreError(
                .backupContents,
                "the backup's manager-registration.json names manager '\(registration.managerId)' but its manifest names "
                    + "'\(manifest.managerId)': the backup is inconsistent and is not restored")
        }
        let differences = differences(device: facts, backup: manifest)
        guard differences.isEmpty else {
            throw RestoreError(
                .mismatch(differences),
                "this device does not match the backup of \(manifest.deviceName), so it cannot restore it (R3, R4):\n  "
                    + differences.joined(separator: "\n  ") + "\nnothing was written")
        }
        return VerifiedBackup(
            contents: contents, archiveSHA256: sha256Hex(data), fileName: fileName, byteCount: data.count,
            deviceId: registration.deviceId, managerId: registration.managerId)
    }

    /// Refuses a cluster bundle (`.tar.gz`, gzip data): a device restores its own node file (R8).
    public static func refuseClusterBundle(_ data: Data, fileName: String) throws(RestoreError) {
        let lowered = fileName.lowercased()
        let gzip = data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b
        guard gzip || lowered.hasSuffix(".tar.gz") || lowered.hasSuffix(".tgz") else { return }
        var nodes = ""
        if gzip, let members = try? ClusterBundle.members(data, maxSize: 1 << 30) {
            let named = members.compactMap { member -> String? in
                guard let parsed = try? BackupNaming.parseDeviceFile(member.fileName) else { return nil }
                return "\(parsed.deviceName) (\(parsed.role.fileNameTag ?? parsed.role.rawValue))"
            }
            if !named.isEmpty { nodes = "; it holds files for " + named.joined(separator: ", ") }
        }
        throw RestoreError(
            .clusterBundle,
            "\(fileName) is a cluster bundle (.tar.gz)\(nodes). A device restores its own node file (R8): extract it with "
                + "'rampart backups extract \(fileName) --node NAME' and restore that .tar; restore the control node first"
        )
    }

    /// Where the backup's device is registered: manager-registration.json of the backup (B11).
    static func registration(in contents: BackupArchive.Contents) throws(RestoreError) -> (
        managerId: String, deviceId: String
    ) {
        guard let data = contents["manager-registration.json"] else {
            throw RestoreError(
                .backupContents,
                "the backup has no manager-registration.json, so the restored device could not reconnect to its manager (B11)"
            )
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let managerId = object["manager_id"] as? String, let deviceId = object["device_id"] as? String
        else {
            throw RestoreError(.backupContents, "the backup's manager-registration.json cannot be read")
        }
        guard !managerId.isEmpty, !deviceId.isEmpty else {
            throw RestoreError(
                .backupContents,
                "the backup's manager-registration.json is empty: the device was not registered with a manager when it was "
                    + "backed up, so the restored device could not reconnect (B11)")
        }
        return (managerId, deviceId)
    }

    /// What differs between this device and the backup's (R3: model, network modules, type and number
    /// of physical interfaces; R4: software version, patch level). One line each, naming both values;
    /// empty when they match.
    public static func differences(device facts: DeviceFacts, backup manifest: BackupManifest) -> [String] {
        var differences: [String] = []
        if facts.model != manifest.model {
            differences.append("model: this device is a \(facts.model), the backup is of a \(manifest.model) (R3)")
        }
        if facts.networkModules != manifest.networkModules {
            differences.append(
                "network modules: this device has \(facts.networkModules), the backup's device had \(manifest.networkModules) (R3)"
            )
        }
        let mine = interfaceCounts(facts.interfaces.map { ($0.type, $0.count) })
        let theirs = interfaceCounts(manifest.interfaces.map { ($0.type, $0.count) })
        for type in Set(mine.keys).union(theirs.keys).sorted() where mine[type] != theirs[type] {
            switch (mine[type], theirs[type]) {
            case (let here?, nil):
                differences.append("interfaces: this device has \(here) \(type), the backup's device had none (R3)")
            case (nil, let there?):
                differences.append("interfaces: the backup's device had \(there) \(type), this device has none (R3)")
            case (let here?, let there?):
                differences.append("interfaces: this device has \(here) \(type), the backup's device had \(there) (R3)")
            case (nil, nil):
                break
            }
        }
        if facts.software != manifest.software.version {
            differences.append(
                "software version: this device runs \(facts.software) patch \(facts.patch), the backup was taken on "
                    + "\(manifest.software.version) patch \(manifest.software.patch) (R4)")
        } else if facts.patch != manifest.software.patch {
            differences.append(
                "patch: this device runs \(facts.software) patch \(facts.patch), the backup was taken on "
                    + "\(manifest.software.version) patch \(manifest.software.patch) (R4)")
        }
        return differences
    }

    /// Interface counts by type (groups of the same type added up; empty groups ignored).
    static func interfaceCounts(_ groups: [(String, Int)]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for (type, count) in groups where count > 0 { counts[type, default: 0] += count }
        return counts
    }
}
