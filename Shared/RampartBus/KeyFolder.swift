import Foundation
import RampartRPC
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// A key folder made by `rampart keys init` (docs/security.md):
///
///     broker.key               the broker's key pair (bus only)
///     authorized_keys          ROLE NAME PUBLIC-KEY per admitted key (read by the bus, reloaded on change)
///     services/<service>.key   one per service kind: inventory, storage, backup-worker, ...
///     operators/<name>.key     people: admin, operator or viewer
///     devices/<device>.key     one per device, named as the device
///
/// Every file is mode 0600 and every folder 0700. Each process gets only its own key file in
/// production; `--keys DIR` is a convenience for one machine running everything.
public struct KeyFolder: Sendable {
    /// The services whose keys `init` makes.
    public static let services = ["inventory", "storage", "backup-worker", "link-signer", "restore-coordinator", "notifier"]

    public let path: String

    /// An existing key folder (nothing is checked until it is used).
    public init(path: String) {
        self.path = path
    }

    public var brokerKeyPath: String { path + "/broker.key" }
    public var authorizedKeysPath: String { path + "/authorized_keys" }

    /// Where the key of `name` in `role` lives.
    public func keyPath(role: BusRole, name: String) -> String {
        "\(path)/\(role.folder)/\(name).key"
    }

    /// Makes a new key folder at `path`: the broker's key, one key per service, the given operators
    /// and devices. Refuses a folder that already has a broker key.
    @discardableResult
    public static func initialize(
        at path: String, operators: [(name: String, role: BusRole)] = [("admin", .admin)], devices: [String] = []
    ) throws -> KeyFolder {
        let folder = KeyFolder(path: path)
        try makeDirectory(path)
        guard !FileManager.default.fileExists(atPath: folder.brokerKeyPath) else {
            throw BusKeyError("\(path) already has a broker key: it is a key folder already (use `rampart keys add`)")
        }
        let broker = BusKeyFile(name: "broker", role: BusKeyFile.brokerRole, keys: try CurveKeyPair.generate(), brokerKey: nil)
        try broker.write(to: folder.brokerKeyPath)
        try AuthorizedKeys(entries: []).save(to: folder.authorizedKeysPath)
        var keys: [(BusRole, String)] = services.map { (.service, $0) }
        keys += operators.map { ($0.role, $0.name) }
        keys += devices.map { (.device, $0) }
        try folder.add(keys)
        return folder
    }

    /// Makes keys for `keys` (role, name), writes their files and admits them, all under the folder's
    /// lock; refuses names already present (nothing is added then). Returns the key files' paths.
    @discardableResult
    public func add(_ keys: [(BusRole, String)]) throws -> [String] {
        try withLock {
            let broker = try BusKeyFile.load(brokerKeyPath)
            var authorized = try AuthorizedKeys.load(authorizedKeysPath)
            var files: [(String, BusKeyFile)] = []
            for (role, name) in keys {
                guard KeyName.isValid(name) else {
                    throw BusKeyError("'\(name)' is not a valid key name (1–64 letters, digits, . _ - @)")
                }
                let file = BusKeyFile(name: name, role: role.rawValue, keys: try CurveKeyPair.generate(), brokerKey: broker.keys.publicKey)
                try authorized.add(AuthorizedKeys.Entry(key: file.keys.publicKey, name: name, role: role))
                let path = keyPath(role: role, name: name)
                guard !FileManager.default.fileExists(atPath: path) else { throw BusKeyError("\(path) exists already") }
                files.append((path, file))
            }
            for role in Set(keys.map(\.0.folder)) { try Self.makeDirectory(path + "/" + role) }
            for (path, file) in files { try file.write(to: path) }
            try authorized.save(to: authorizedKeysPath)
            return files.map(\.0)
        }
    }

    /// Removes every key named `name` from the authorized list (the bus refuses it from its next
    /// request on) and deletes its key file. Returns how many keys were revoked.
    @discardableResult
    public func revoke(name: String) throws -> Int {
        try withLock {
            var authorized = try AuthorizedKeys.load(authorizedKeysPath)
            let roles = authorized.entries.filter { $0.name == name }.map(\.role)
            let removed = authorized.remove(name: name)
            guard removed > 0 else { return 0 }
            try authorized.save(to: authorizedKeysPath)
            for role in roles { unlink(keyPath(role: role, name: name)) }
            return removed
        }
    }

    /// The admitted keys.
    public func list() throws -> [AuthorizedKeys.Entry] {
        try AuthorizedKeys.load(authorizedKeysPath).entries
    }

    private func withLock<T>(_ body: () throws -> T) throws -> T {
        let fd = open(path + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BusKeyError("\(path)/.lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw BusKeyError("\(path)/.lock: \(String(cString: strerror(errno)))") }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    private static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw BusKeyError("\(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { throw BusKeyError("\(path) is not a folder") }
        if info.st_mode & 0o077 != 0 { _ = chmod(path, 0o700) }
    }
}
