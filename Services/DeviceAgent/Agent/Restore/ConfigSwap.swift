import Crypto
import Foundation
import RampartArchive

#if canImport(Glibc)
    import Glibc
#endif

/// Applies a verified backup to a device folder, all or nothing (R9, R10, R11).
///
/// `prepare` builds the complete new device in a staging folder inside the device folder
/// (`DIR/.restore-transaction/staged/`): the backup's configuration tree without any VPN certificate or
/// VPN configuration (the whole `vpn/` tree, R10), every private key re-encrypted under a newly
/// generated random `device.key` (R11), and `facts.json` with the backup's name and management IP but
/// this replacement's hardware facts and serial (R9). The archive is read again for this, as a stream (a
/// buffer at a time, whatever its size), and every member and the whole archive's SHA-256 are checked
/// again, so a file that changed since it was verified is refused. Nothing outside the staging folder is
/// touched, so any failure up to here leaves the device as it was.
///
/// `swap` then renames, for `config/`, `device.key` and `facts.json` in turn, the live one aside
/// (`previous/`) and the staged one in; a failure undoes what was done. Until `commit` the previous
/// device can be put back (`rollBack`, e.g. when the restore lease turns out to be lost); `commit`
/// removes it. `recover` completes a commit or rolls back an uncommitted swap that a crash interrupted.
public struct ConfigSwap: Sendable {
    /// What the restore changed, for the console, the coordinator and the checklist (R13).
    public struct Summary: Sendable, Equatable {
        /// Configuration files written (VPN files excluded).
        public var files: Int
        /// Private keys re-encrypted under the new device key, as stored (`pki/<name>.key.enc`).
        public var reencryptedKeys: [String]
        /// VPN certificates removed, by name (from the backup and from the tree it replaces), sorted (R10).
        public var removedVPNCertificates: [String]
        /// VPN files of the backup that were not restored (R10).
        public var skippedVPNFiles: Int
        /// The restored facts.json.
        public var facts: DeviceProfile
        /// The restored device's id and manager (manager-registration.json, B11).
        public var deviceId: String
        /// The manager the restored device reconnects to.
        public var managerId: String
    }

    /// Points where tests inject a failure: after staging, and before each item is swapped.
    public struct Hooks: Sendable {
        /// Runs once the staging folder is complete, before `prepare` returns.
        public var afterStaging: (@Sendable () throws -> Void)?
        /// Runs before `config`, `device.key` and `facts.json` are each swapped in.
        public var beforeSwapping: (@Sendable (String) throws -> Void)?

        /// No hooks.
        public init(
            afterStaging: (@Sendable () throws -> Void)? = nil,
            beforeSwapping: (@Sendable (String) throws -> Void)? = nil
        ) {
            self.afterStaging = afterStaging
            self.beforeSwapping = beforeSwapping
        }
    }

    /// How far a swap got.
    public enum State: Sendable, Equatable {
        /// Staged; the device is untouched.
        case staged
        /// Swapped in; the previous device is kept aside until commit.
        case swapped
        /// Committed: the previous device is gone.
        case committed
        /// Given up: the device is as it was.
        case abandoned
    }

    /// What `recover` found and did.
    public enum Recovery: Sendable, Equatable {
        /// A staging folder of a restore that never swapped: removed; the device was untouched.
        case removedStaging
        /// An uncommitted swap: the previous device was put back.
        case rolledBack
        /// A commit that was interrupted: finished.
        case completedCommit
    }

    /// The transaction folder inside the device folder.
    public static let transactionName = ".restore-transaction"
    /// What a swap replaces, in order.
    static let items = ["config", "device.key", "facts.json"]
    /// File extensions of certificates under `vpn/`.
    static let certificateExtensions: Set<String> = ["crt", "cer", "pem", "der", "p12", "pfx"]

    /// The device folder.
    public let directory: String
    /// What the restore changes.
    public let summary: Summary
    /// How far it got.
    public private(set) var state: State
    private let hooks: Hooks

    private var transaction: String { directory + "/" + Self.transactionName }
    private var staged: String { transaction + "/staged" }
    private var previous: String { transaction + "/previous" }

    private init(directory: String, summary: Summary, hooks: Hooks) {
        self.directory = directory
        self.summary = summary
        self.hooks = hooks
        state = .staged
    }

    /// Builds the new device for `backup` in the staging folder of `folder` (see the type's doc). Throws
    /// `RestoreError(.busy)` when a transaction folder is already there and `.apply` when staging fails;
    /// either way the device is untouched and no staging folder is left behind.
    public static func prepare(folder: DeviceFolder, backup: VerifiedBackup, hooks: Hooks = Hooks())
        throws(RestoreError) -> ConfigSwap
    {
        let directory = folder.path
        let transaction = directory + "/" + transactionName
        guard !FileManager.default.fileExists(atPath: transaction) else {
            throw RestoreError(
                .busy,
                "\(transaction) exists: another restore is running or one was interrupted (restart the CLI to recover it)"
            )
        }
        do {
            let staged = transaction + "/staged"
            try FileManager.default.createDirectory(atPath: staged + "/config", withIntermediateDirectories: true)
            // R11: a new random device key, never the one the old tree used.
            let oldKey = FileManager.default.contents(atPath: folder.keyPath)
            var keyData = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
            while keyData == oldKey { keyData = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) } }
            let key = SymmetricKey(data: keyData)
            try writeFile(keyData, to: staged + "/device.key", mode: 0o600)

            var written = 0
            var keys: [String] = []
            var skipped = 0
            var certificates = Set<String>()
            // The archive is read again, a buffer at a time, and checked again as it is written: every member
            // against the manifest, the whole archive against the SHA-256 the lease was asked for. A file
            // changed since it was verified stops the staging here, before anything outside it is touched.
            var reader = try BackupArchive.StreamReader(backup.archive.source())
            while let file = try reader.nextFile() {
                // RampartArchive checked every path; checked again where it is joined to a folder.
                try ArchivePath.validateRelative(file.path)
                if isVPN(file.path) {
                    // R10: no VPN certificate or VPN configuration survives a restore (the reader reads
                    // through the file's contents, and checks them, on the next call).
                    skipped += 1
                    if let name = certificateName(file.path) { certificates.insert(name) }
                    continue
                }
                if file.path.hasSuffix(".key") {
                    // R11: under the new key. A key is sealed whole, so its size is bounded (checked before
                    // the lease by RestorePreflight, and here again).
                    guard file.size <= RestorePreflight.maxPrivateKeySize else {
                        throw RestoreError(
                            .apply,
                            "the private key \(file.path) is \(file.size) bytes, over the limit of "
                                + "\(RestorePreflight.maxPrivateKeySize); nothing was written")
                    }
                    var clear = Data()
                    while let piece = try reader.readChunk() { clear.append(piece) }
                    let stored = file.path + ".enc"
                    try writeFile(
                        try DeviceFolder.encrypt(clear, key: key, path: stored),
                        to: staged + "/config/" + stored,
                        mode: 0o600)
                    keys.append(stored)
                } else {
                    let output = try StagedFile(path: staged + "/config/" + file.path, mode: 0o644)
                    while let piece = try reader.readChunk() { try output.write(piece) }
                    try output.close()
                }
                written += 1
            }
            let listing = try reader.finish()
            guard listing.archiveSHA256 == backup.archiveSHA256 else {
                throw RestoreError(
                    .apply,
                    "\(backup.fileName) changed after it was verified (its SHA-256 is now \(listing.archiveSHA256), "
                        + "not \(backup.archiveSHA256)); nothing was written")
            }
            // R10: certificates the device has now, including ones added after the backup, go too.
            for path in try regularFiles(below: folder.configPath + "/vpn") {
                if let name = certificateName("vpn/" + path) { certificates.insert(name) }
            }

            // R9: the backup's identity and management IP; this replacement's hardware and serial.
            var facts = folder.facts
            facts.name = backup.manifest.deviceName
            facts.managementIp = backup.manifest.managementIp
            do {
                try facts.validate()
            } catch {
                throw RestoreError(.apply, "the backup's device name or management IP cannot be used: \(error)")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try writeFile(try encoder.encode(facts), to: staged + "/facts.json", mode: 0o644)
            syncDirectory(staged)
            syncDirectory(transaction)
            try hooks.afterStaging?()

            let summary = Summary(
                files: written, reencryptedKeys: keys.sorted(), removedVPNCertificates: certificates.sorted(),
                skippedVPNFiles: skipped, facts: facts, deviceId: backup.deviceId, managerId: backup.managerId)
            return ConfigSwap(directory: directory, summary: summary, hooks: hooks)
        } catch {
            try? FileManager.default.removeItem(atPath: transaction)
            if let error = error as? RestoreError { throw error }
            throw RestoreError(.apply, "the new configuration could not be staged: \(error); nothing was written")
        }
    }

    /// Swaps the staged device in (config/, device.key, facts.json). On any failure what was swapped is
    /// put back and the staging folder removed: the device is as it was, and `.apply` is thrown.
    public mutating func swap() throws(RestoreError) {
        guard state == .staged else { throw RestoreError(.apply, "swap called in state \(state)") }
        var done: [String] = []
        do {
            try FileManager.default.createDirectory(atPath: previous, withIntermediateDirectories: true)
            for item in Self.items {
                try hooks.beforeSwapping?(item)
                done.append(item)
                try Self.move(directory + "/" + item, to: previous + "/" + item)
                try Self.move(staged + "/" + item, to: directory + "/" + item)
            }
            Self.syncDirectory(previous)
            Self.syncDirectory(directory)
            state = .swapped
        } catch {
            var failures: [String] = []
            for item in done.reversed() {
                do { try putBack(item) } catch { failures.append("\(error)") }
            }
            state = .abandoned
            guard failures.isEmpty else {
                throw RestoreError(
                    .apply,
                    "the configuration could not be swapped in (\(error)) and putting the previous one back failed "
                        + "(\(failures.joined(separator: "; "))); restart the CLI to recover from \(transaction)")
            }
            try? FileManager.default.removeItem(atPath: transaction)
            throw RestoreError(
                .apply, "the configuration could not be swapped in: \(error); the device was left as it was")
        }
    }

    /// Puts the previous device back after `swap` (before `commit`): used when the lease was lost.
    public mutating func rollBack() throws(RestoreError) {
        guard state == .swapped else { throw RestoreError(.apply, "roll back called in state \(state)") }
        var failures: [String] = []
        for item in Self.items.reversed() {
            do { try putBack(item) } catch { failures.append("\(error)") }
        }
        guard failures.isEmpty else {
            throw RestoreError(
                .apply,
                "the previous configuration could not be put back (\(failures.joined(separator: "; "))); restart the CLI "
                    + "to recover from \(transaction)")
        }
        Self.syncDirectory(directory)
        try? FileManager.default.removeItem(atPath: transaction)
        state = .abandoned
    }

    /// Makes the swap final: marks the transaction committed (so recovery completes rather than rolls
    /// back), then removes the previous device. Throws `.apply`, still swapped, when the mark cannot be
    /// written; the caller then rolls back.
    public mutating func commit() throws(RestoreError) {
        guard state == .swapped else { throw RestoreError(.apply, "commit called in state \(state)") }
        do {
            try Self.writeFile(Data("committed\n".utf8), to: transaction + "/COMMITTED", mode: 0o644)
            Self.syncDirectory(transaction)
        } catch {
            throw RestoreError(.apply, "the restore could not be committed: \(error)")
        }
        state = .committed
        // What is left (the previous device) is removed by recovery should this fail.
        try? FileManager.default.removeItem(atPath: transaction)
    }

    /// Gives up a staged swap (before `swap`): removes the staging folder; the device is untouched.
    public mutating func discard() {
        guard state == .staged else { return }
        try? FileManager.default.removeItem(atPath: transaction)
        state = .abandoned
    }

    /// Puts item `item` of `previous/` back in place of whatever is live (the staged one, or nothing).
    private func putBack(_ item: String) throws {
        try Self.putBack(item, directory: directory)
    }

    static func putBack(_ item: String, directory: String) throws {
        let saved = directory + "/" + transactionName + "/previous/" + item
        let live = directory + "/" + item
        guard exists(saved) else { return }
        if exists(live) { try FileManager.default.removeItem(atPath: live) }
        try move(saved, to: live)
    }

    /// Finishes what an interrupted restore left in `directory`: a committed transaction is completed,
    /// an uncommitted swap rolled back, a bare staging folder and downloads removed. Returns what it did
    /// (nil: nothing to recover).
    @discardableResult
    public static func recover(directory: String) throws -> Recovery? {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasPrefix(BackupFetcher.downloadPrefix) {
            unlink(directory + "/" + name)
        }
        let transaction = directory + "/" + transactionName
        guard exists(transaction) else { return nil }
        if exists(transaction + "/COMMITTED") {
            try FileManager.default.removeItem(atPath: transaction)
            return .completedCommit
        }
        var rolledBack = false
        for item in items.reversed() where exists(transaction + "/previous/" + item) {
            try putBack(item, directory: directory)
            rolledBack = true
        }
        syncDirectory(directory)
        try FileManager.default.removeItem(atPath: transaction)
        return rolledBack ? .rolledBack : .removedStaging
    }

    // MARK: the tree

    /// Whether `path` (relative to config/) is VPN configuration: the `vpn/` tree.
    static func isVPN(_ path: String) -> Bool {
        let first = ArchivePath.components(path).first
        return first == "vpn"
    }

    /// The certificate name of a VPN file ("vpn/certs/branch-east.crt" → "branch-east"), or nil.
    static func certificateName(_ path: String) -> String? {
        guard isVPN(path) else { return nil }
        let components = ArchivePath.components(path)
        guard let last = components.last else { return nil }
        let name = String(last)
        let ext = (name as NSString).pathExtension.lowercased()
        let inCertificatesFolder = components.dropLast().contains("certs")
        guard
            certificateExtensions.contains(ext)
                || (inCertificatesFolder && !ext.isEmpty && ext != "json" && ext != "key")
        else { return nil }
        return (name as NSString).deletingPathExtension
    }

    /// Regular files below `root` (relative paths); none when it does not exist.
    static func regularFiles(below root: String) throws -> [String] {
        guard exists(root) else { return [] }
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
        var files: [String] = []
        while let relative = enumerator.nextObject() as? String {
            var info = stat()
            if lstat(root + "/" + relative, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG { files.append(relative) }
        }
        return files
    }

    // MARK: files

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func move(_ source: String, to destination: String) throws {
        guard rename(source, destination) == 0 else {
            throw AgentError("cannot rename \(source) to \(destination): \(String(cString: strerror(errno)))")
        }
    }

    /// Writes a new file (its folders created), flushed to disk.
    static func writeFile(_ data: Data, to path: String, mode: mode_t) throws {
        let file = try StagedFile(path: path, mode: mode)
        try file.write(data)
        try file.close()
    }

    /// fsync of a folder, so renames in it are durable (best effort).
    static func syncDirectory(_ path: String) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }
}

/// A new file written a piece at a time: created with `O_EXCL` (its folders made first), given its
/// mode, and flushed to disk (`fsync`) when closed. Closed (unflushed) when the value goes without `close()`.
final class StagedFile {
    let path: String
    private let descriptor: Int32
    private let mode: mode_t
    private var closed = false

    init(path: String, mode: mode_t) throws {
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw AgentError("cannot create \(path): \(String(cString: strerror(errno)))") }
        self.path = path
        self.descriptor = descriptor
        self.mode = mode
    }

    func write(_ data: Data) throws {
        try data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let count = Glibc.write(descriptor, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw AgentError("cannot write \(path): \(String(cString: strerror(errno)))")
                }
                offset += count
            }
        }
    }

    /// Sets the mode, flushes and closes.
    func close() throws {
        guard !closed else { return }
        closed = true
        defer { Glibc.close(descriptor) }
        fchmod(descriptor, mode)
        guard fsync(descriptor) == 0 else {
            throw AgentError("cannot flush \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { if !closed { Glibc.close(descriptor) } }
}

/// An exclusive lock on a device folder for the length of a restore (flock on the folder itself, so
/// nothing is created in it): two CLIs cannot restore the same device at once. Released when the value
/// is gone (or the process ends).
public final class RestoreLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock on `directory`; throws `RestoreError(.busy)` when another process holds it.
    public init(directory: String) throws(RestoreError) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw RestoreError(.busy, "cannot open \(directory): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw RestoreError(.busy, "another restore of this device is running (\(directory) is locked)")
        }
        self.descriptor = descriptor
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
