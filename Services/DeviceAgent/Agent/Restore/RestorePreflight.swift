import Foundation
import RampartArchive

/// A backup that passed every check the device makes before asking for a lease.
public struct VerifiedBackup: Sendable {
    /// What verifying the archive established: manifest, manifest.json as stored, every file's path, size
    /// and SHA-256 (each member checked against the manifest), the whole archive's SHA-256 and size.
    public var listing: BackupArchive.Listing
    /// The archive itself, read again when the new configuration is staged (`ConfigSwap.prepare`), which
    /// checks every member and the whole archive's SHA-256 once more.
    public var archive: ArchiveBytes
    /// The archive's file name.
    public var fileName: String
    /// The device id in the backup's manager-registration.json (equal to the manifest's).
    public var deviceId: String
    /// The manager id in the backup's manager-registration.json (equal to the manifest's).
    public var managerId: String

    /// The manifest.
    public var manifest: BackupManifest { listing.manifest }
    /// SHA-256 of the whole archive file, lower-case hex.
    public var archiveSHA256: String { listing.archiveSHA256 }
    /// The archive's size in bytes.
    public var byteCount: Int { listing.byteCount }
}

/// The checks a device makes on a backup before it asks for a restore lease (docs/rules.md#archives, R3, R4, R8):
/// the archive opens and every member matches its SHA-256 in the manifest; nothing would land outside
/// the configuration folder (RampartArchive refuses `..`, absolute paths, links, devices, FIFOs); a
/// cluster bundle is refused with a pointer to `rampart backups extract`; the device's own hardware
/// and software match the manifest. Nothing is written by any of them.
///
/// The archive is read as a stream (`BackupArchive.StreamReader`), a buffer at a time: only the
/// manifest, the paths and manager-registration.json are kept, so a restore's memory does not grow with
/// the archive (docs/benchmarks.md, "Restore memory").
public enum RestorePreflight {
    /// The largest private key (`*.key`) a backup may hold, bytes: keys are re-encrypted in memory when
    /// the backup is staged (R11), and a real one is a few kilobytes.
    public static let maxPrivateKeySize = 1 << 20
    /// The largest manager-registration.json read, bytes.
    static let maxRegistrationSize = 64 * 1024

    /// Verifies the archive file `file` (named `fileName`) for the device with `facts`, streaming it.
    /// Throws `RestoreError` naming what is wrong (each fact that differs, the member that is refused).
    public static func verify(_ file: ArchiveFile, fileName: String, device facts: DeviceProfile) throws(RestoreError)
        -> VerifiedBackup
    {
        try verify(.file(file), fileName: fileName, device: facts)
    }

    /// Verifies `data` (the archive named `fileName`) for the device with `facts`; see `verify(_:fileName:device:)`
    /// for a file.
    public static func verify(_ data: Data, fileName: String, device facts: DeviceProfile) throws(RestoreError)
        -> VerifiedBackup
    {
        try verify(.data(data), fileName: fileName, device: facts)
    }

    /// Verifies `archive`, named `fileName`, for the device with `facts`: `inspect`, then the first of
    /// what stands in the way (the backup's contents, B11, B12; then this device's facts, R3, R4).
    public static func verify(_ archive: ArchiveBytes, fileName: String, device facts: DeviceProfile)
        throws(RestoreError) -> VerifiedBackup
    {
        let inspection = try inspect(archive, fileName: fileName, device: facts)
        if let problem = inspection.contentProblems.first { throw problem }
        if let mismatch = inspection.mismatch { throw mismatch }
        guard let registration = inspection.registration else {
            throw RestoreError(.backupContents, "the backup's manager-registration.json cannot be read")
        }
        return VerifiedBackup(
            listing: inspection.listing, archive: archive, fileName: fileName, deviceId: registration.deviceId,
            managerId: registration.managerId)
    }

    /// What reading a backup found (`inspect`): the archive verified, and everything that stands between
    /// it and a restore on this device, all at once.
    public struct Inspection: Sendable {
        /// The archive's manifest, manifest.json as stored, every file's path, size and SHA-256, the whole
        /// archive's SHA-256 and size.
        public var listing: BackupArchive.Listing
        /// The manager and device of manager-registration.json when it names both and agrees with the
        /// manifest (B11).
        public var registration: Registration?
        /// Why the backup cannot be restored as it is (B11, B12), in the order `verify` names them; empty
        /// when it can.
        public var contentProblems: [RestoreError]
        /// What differs between this device and the backup's (R3, R4), one line each; empty when they match.
        public var differences: [String]

        /// The refusal of `differences`, nil when there are none.
        public var mismatch: RestoreError? {
            guard !differences.isEmpty else { return nil }
            return RestoreError(
                .mismatch(differences),
                "this device does not match the backup of \(listing.manifest.deviceName), so it cannot restore it (R3, R4):\n  "
                    + differences.joined(separator: "\n  ") + "\nnothing was written")
        }
    }

    /// Where a backup's device is registered (its manager-registration.json, B11).
    public struct Registration: Sendable, Equatable {
        /// The manager.
        public var managerId: String
        /// The device.
        public var deviceId: String
    }

    /// Reads `archive`, named `fileName`, as a stream and checks it for the device with `facts`, writing
    /// nothing: throws only when the archive itself is refused (a cluster bundle; the manifest, a hash, a
    /// path, a link, a device file — nothing in it can be trusted then); the backup's contents (B11, B12)
    /// and this device's facts (R3, R4) are found all at once.
    public static func inspect(_ archive: ArchiveBytes, fileName: String, device facts: DeviceProfile)
        throws(RestoreError) -> Inspection
    {
        try refuseClusterBundle(archive, fileName: fileName)
        let listing: BackupArchive.Listing
        var encryptedKey: String?
        var oversizeKey: BackupManifest.FileEntry?
        var registrationJSON: Data?
        do {
            var reader = try BackupArchive.StreamReader(archive.source())
            while let file = try reader.nextFile() {
                if encryptedKey == nil, file.path.hasSuffix(DeviceFolder.encryptedKeySuffix) {
                    encryptedKey = file.path
                }
                if oversizeKey == nil, file.path.hasSuffix(".key"), file.size > maxPrivateKeySize { oversizeKey = file }
                if file.path == "manager-registration.json" {
                    var contents = Data()
                    while let piece = try reader.readChunk() {
                        if contents.count + piece.count <= maxRegistrationSize { contents.append(piece) }
                    }
                    registrationJSON = file.size <= maxRegistrationSize ? contents : Data()
                }
            }
            listing = try reader.finish()
        } catch let error as ArchiveError {
            throw RestoreError(
                .archive(error.code), "the archive \(fileName) is refused: \(error.message); nothing was written")
        } catch {
            throw RestoreError(
                .archive(.badHeader), "the archive \(fileName) is refused: \(error); nothing was written")
        }
        let manifest = listing.manifest
        var problems: [RestoreError] = []
        if let encrypted = encryptedKey {
            problems.append(
                RestoreError(
                    .backupContents,
                    "the backup holds an encrypted private key (\(encrypted)); a backup holds private keys decrypted "
                        + "(B12), so this one cannot be restored"))
        }
        if let key = oversizeKey {
            problems.append(
                RestoreError(
                    .backupContents,
                    "the backup's private key \(key.path) is \(key.size) bytes; a private key is at most "
                        + "\(maxPrivateKeySize) bytes, so this backup is not restored"))
        }
        var consistent: Registration?
        do throws(RestoreError) {
            let registration = try registration(registrationJSON)
            var agrees = true
            if manifest.deviceId.isEmpty || registration.deviceId != manifest.deviceId {
                agrees = false
                problems.append(
                    RestoreError(
                        .backupContents,
                        "the backup's manager-registration.json names device '\(registration.deviceId)' but its manifest names "
                            + "'\(manifest.deviceId)': the backup is inconsistent and is not restored"))
            }
            if manifest.managerId.isEmpty || registration.managerId != manifest.managerId {
                agrees = false
                problems.append(
                    RestoreError(
                        .backupContents,
                        "the backup's manager-registration.json names manager '\(registration.managerId)' but its manifest names "
                            + "'\(manifest.managerId)': the backup is inconsistent and is not restored"))
            }
            if agrees { consistent = Registration(managerId: registration.managerId, deviceId: registration.deviceId) }
        } catch {
            problems.append(error)
        }
        return Inspection(
            listing: listing, registration: consistent, contentProblems: problems,
            differences: differences(device: facts, backup: manifest))
    }

    /// Refuses a cluster bundle (`.tar.gz`, gzip data): a device restores its own node file (R8).
    public static func refuseClusterBundle(_ data: Data, fileName: String) throws(RestoreError) {
        try refuseClusterBundle(.data(data), fileName: fileName)
    }

    /// Refuses a cluster bundle (`.tar.gz`, gzip data): a device restores its own node file (R8). The
    /// nodes it holds are named, read from the bundle as a stream.
    public static func refuseClusterBundle(_ archive: ArchiveBytes, fileName: String) throws(RestoreError) {
        let magic = (try? archive.prefix(2)) ?? Data()
        guard ClusterBundle.isBundle(fileName: fileName, firstBytes: magic) else { return }
        var nodes: [String] = []
        if ClusterBundle.isBundle(fileName: "", firstBytes: magic),
            let names = try? ClusterBundle.fileNames(archive.source(), maxSize: 1 << 30)
        {
            nodes = names.compactMap { name -> String? in
                guard let parsed = try? BackupNaming.parseDeviceFile(name) else { return nil }
                return "\(parsed.deviceName) (\(parsed.role.fileNameTag ?? parsed.role.rawValue))"
            }
        }
        throw RestoreError(.clusterBundle, ClusterBundle.restoreRefusal(fileName: fileName, nodes: nodes))
    }

    /// Where the backup's device is registered: manager-registration.json of the backup (B11).
    static func registration(_ json: Data?) throws(RestoreError) -> (managerId: String, deviceId: String) {
        guard let data = json else {
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

    /// This device's facts as R3 and R4 compare them.
    static func matchFacts(_ facts: DeviceProfile) -> ApplianceMatch.Facts {
        ApplianceMatch.Facts(
            model: facts.model, networkModules: facts.networkModules, interfaces: facts.interfaces.map { ($0.type, $0.count) },
            version: facts.software, patch: facts.patch)
    }

    /// What differs between this device and the backup's (R3: model, network modules, type and number
    /// of physical interfaces; R4: software version, patch level), as `ApplianceMatch` decides it for
    /// the coordinator too. One line each, naming both values; empty when they match.
    public static func differences(device facts: DeviceProfile, backup manifest: BackupManifest) -> [String] {
        let device = matchFacts(facts)
        let backup = ApplianceMatch.Facts(manifest)
        return ApplianceMatch.hardware(device, backup: backup, subject: "this device")
            + ApplianceMatch.software(device, backup: backup, subject: "this device")
    }
}
