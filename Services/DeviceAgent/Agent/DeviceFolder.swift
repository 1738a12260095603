import Crypto
import Foundation
import RampartArchive
import RampartBasics

/// A simulated device's folder:
///
/// ```
/// DIR/facts.json          hardware and software facts
/// DIR/device.key          32 random bytes (mode 0600): encrypts the private keys at rest
/// DIR/config/             the configuration tree (what a backup holds)
///     pki/<name>.key.enc  private keys, AES-256-GCM under device.key
/// DIR/backups/            the device's local backup folder
/// ```
public struct DeviceFolder: Sendable {
    /// The folder.
    public let path: String
    /// The facts in `facts.json`.
    public let facts: DeviceProfile

    /// Suffix of an encrypted private key in the configuration tree.
    public static let encryptedKeySuffix = ".key.enc"

    /// `DIR/config`.
    public var configPath: String { path + "/config" }
    /// `DIR/backups`.
    public var backupsPath: String { path + "/backups" }
    /// `DIR/facts.json`.
    public var factsPath: String { path + "/facts.json" }
    /// `DIR/device.key`.
    public var keyPath: String { path + "/device.key" }
    /// `DIR/config/manager-registration.json`.
    public var registrationPath: String { configPath + "/manager-registration.json" }

    /// Creates a device folder at `path` from `facts`; refuses when `path` already holds a device (or
    /// anything but an empty folder).
    @discardableResult
    public static func initialize(at path: String, facts: DeviceProfile) throws -> DeviceFolder {
        try facts.validate()
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try manager.contentsOfDirectory(atPath: path)).isEmpty else {
                throw AgentError("\(path) already exists and is not an empty folder: refusing to overwrite a device")
            }
        }
        let folder = DeviceFolder(path: path, facts: facts)
        try manager.createDirectory(atPath: folder.configPath, withIntermediateDirectories: true)
        try manager.createDirectory(atPath: folder.backupsPath, withIntermediateDirectories: true)
        var key = Data(count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in 0..<32 { key[index] = UInt8.random(in: 0...255, using: &generator) }
        try write(key, to: folder.keyPath, mode: 0o600)
        let symmetric = SymmetricKey(data: key)
        for (relative, contents) in ConfigGenerator.generate(facts) {
            if relative.hasSuffix(".key") {
                let stored = relative + ".enc"
                try write(try encrypt(contents, key: symmetric, path: stored), to: folder.configPath + "/" + stored, mode: 0o600)
            } else {
                try write(contents, to: folder.configPath + "/" + relative, mode: 0o644)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try write(try encoder.encode(facts), to: folder.factsPath, mode: 0o644)
        return folder
    }

    /// Opens the device folder at `path`.
    public static func open(_ path: String) throws -> DeviceFolder {
        let factsPath = path + "/facts.json"
        guard let data = FileManager.default.contents(atPath: factsPath) else {
            throw AgentError("\(path) is not a device folder (no facts.json); create one with 'device-agent init'")
        }
        let facts: DeviceProfile
        do {
            facts = try JSONDecoder().decode(DeviceProfile.self, from: data)
        } catch {
            throw AgentError("\(factsPath) cannot be read: \(error)")
        }
        let folder = DeviceFolder(path: path, facts: facts)
        guard FileManager.default.fileExists(atPath: folder.keyPath), FileManager.default.fileExists(atPath: folder.configPath)
        else {
            throw AgentError("\(path) is incomplete: device.key or config/ is missing")
        }
        return folder
    }

    /// The key that encrypts the private keys.
    func deviceKey() throws -> SymmetricKey {
        guard let data = FileManager.default.contents(atPath: keyPath), data.count == 32 else {
            throw AgentError("\(keyPath) is missing or not 32 bytes")
        }
        return SymmetricKey(data: data)
    }

    /// Records the manager registration (manager id, device id) in the configuration tree (B11);
    /// leaves the file alone when it already says so.
    public func writeRegistration(managerId: String, deviceId: String, at date: Date = Date()) throws {
        if let current = try? registration(), current.managerId == managerId, current.deviceId == deviceId { return }
        let text = ConfigGenerator.registrationJSON(
            managerId: managerId, deviceId: deviceId, registeredAt: BackupManifest.timestamp(date))
        try Self.write(Data(text.utf8), to: registrationPath, mode: 0o644)
    }

    /// The registration recorded in the tree ("" ids when not registered).
    public func registration() throws -> (managerId: String, deviceId: String) {
        guard let data = FileManager.default.contents(atPath: registrationPath),
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { throw AgentError("\(registrationPath) cannot be read") }
        return (object["manager_id"] as? String ?? "", object["device_id"] as? String ?? "")
    }

    /// Every regular file of the configuration tree (paths relative to `config/`, sorted).
    func storedPaths() throws -> [String] {
        let manager = FileManager.default
        guard let enumerator = manager.enumerator(atPath: configPath) else {
            throw AgentError("\(configPath) cannot be listed")
        }
        var paths: [String] = []
        while let relative = enumerator.nextObject() as? String {
            let full = configPath + "/" + relative
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            let attributes = try manager.attributesOfItem(atPath: full)
            guard attributes[.type] as? FileAttributeType == .typeRegular else { continue }  // links are not configuration
            paths.append(relative)
        }
        return paths.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Every file of the configuration tree as stored (paths relative to `config/`, sorted).
    public func storedFiles() throws -> [BackupArchive.File] {
        try storedPaths().map { relative in
            let full = configPath + "/" + relative
            guard let contents = FileManager.default.contents(atPath: full) else {
                throw AgentError("\(full) cannot be read")
            }
            return BackupArchive.File(path: relative, contents: contents)
        }
    }

    /// The configuration tree as a backup holds it (B12), for an archive written as a stream: each
    /// file's size and SHA-256 are read first, a buffer at a time, and its contents read again, the same
    /// way, when the archive is written (`BackupArchive.write` refuses a file that changed in between).
    /// Private keys are decrypted into memory (`pki/<name>.key`): a key is a few kilobytes.
    ///
    /// `running-config` is exported as a device writes it (`VolatileExport`): with a banner naming the
    /// export's time `date`, the clock's drift and a checksum, which differ on every export.
    public func exportStreams(at date: Date = Date()) throws -> [BackupArchive.StreamedFile] {
        let key = try deviceKey()
        return try storedPaths().map { relative in
            let full = configPath + "/" + relative
            if relative == VolatileExport.runningConfig {
                guard let stored = FileManager.default.contents(atPath: full) else { throw AgentError("\(full) cannot be read") }
                return BackupArchive.StreamedFile(.init(path: relative, contents: VolatileExport.runningConfig(stored, at: date)))
            }
            if relative.hasSuffix(Self.encryptedKeySuffix) {
                guard let sealed = FileManager.default.contents(atPath: full) else {
                    throw AgentError("\(full) cannot be read")
                }
                let clear = try Self.decrypt(sealed, key: key, path: relative)
                return BackupArchive.StreamedFile(.init(path: String(relative.dropLast(4)), contents: clear))
            }
            var hash = SHA256()
            var size = 0
            try Self.read(full) { piece in
                hash.update(data: piece)
                size += piece.count
            }
            let digest = hash.finalize().hexString
            return BackupArchive.StreamedFile(path: relative, size: size, sha256: digest) { write in
                try Self.read(full, write)
            }
        }
    }

    /// Reads the file at `path` a mebibyte at a time.
    static func read(_ path: String, _ body: (Data) throws -> Void) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw AgentError("\(path) cannot be read") }
        defer { try? handle.close() }
        while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty { try body(piece) }
    }

    /// The configuration tree as a backup holds it (B12): private keys decrypted, `pki/<name>.key`.
    public func exportFiles() throws -> [BackupArchive.File] {
        let key = try deviceKey()
        return try storedFiles().map { file in
            guard file.path.hasSuffix(Self.encryptedKeySuffix) else { return file }
            let clear = try Self.decrypt(file.contents, key: key, path: file.path)
            return BackupArchive.File(path: String(file.path.dropLast(4)), contents: clear)
        }
    }

    /// Bytes in the configuration tree.
    public func configBytes() -> UInt64 {
        let manager = FileManager.default
        guard let enumerator = manager.enumerator(atPath: configPath) else { return 0 }
        var total: UInt64 = 0
        while let relative = enumerator.nextObject() as? String {
            if let attributes = try? manager.attributesOfItem(atPath: configPath + "/" + relative),
                attributes[.type] as? FileAttributeType == .typeRegular, let size = attributes[.size] as? NSNumber
            {
                total += size.uint64Value
            }
        }
        return total
    }

    // MARK: keys at rest

    /// AES-256-GCM of `clear` under `key`, bound to its path: nonce ‖ ciphertext ‖ tag.
    static func encrypt(_ clear: Data, key: SymmetricKey, path: String) throws -> Data {
        guard let combined = try AES.GCM.seal(clear, using: key, authenticating: Data(("rampart-key-v1:" + path).utf8)).combined
        else { throw AgentError("AES-GCM gave no combined form") }
        return combined
    }

    /// Opens what `encrypt` sealed; throws when the key or the path differ or the data was altered.
    static func decrypt(_ sealed: Data, key: SymmetricKey, path: String) throws -> Data {
        do {
            return try AES.GCM.open(
                try AES.GCM.SealedBox(combined: sealed), using: key, authenticating: Data(("rampart-key-v1:" + path).utf8))
        } catch {
            throw AgentError("private key \(path) cannot be decrypted with device.key (altered, or another device's)")
        }
    }

    static func write(_ data: Data, to path: String, mode: Int) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = path + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: mode]) else {
            throw AgentError("cannot write \(path)")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw AgentError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
