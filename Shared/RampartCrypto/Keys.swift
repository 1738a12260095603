import Crypto
import Foundation
import RampartBasics

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The master key (32 bytes) that wraps every object's data key. Its id, the first 16 hex digits of
/// SHA-256(key), is stored with each object; the key itself never appears in a description.
public struct MasterKey: Sendable, CustomStringConvertible {
    /// Size of the key in bytes.
    public static let byteCount = 32
    /// Length of `id` in characters.
    public static let idLength = 16

    private let stored: SealedKeyBytes
    var key: SymmetricKey { stored.key }
    /// First 16 lower-case hex digits of SHA-256 of the key bytes.
    public let id: String

    /// A master key from exactly 32 bytes.
    public init(bytes: some ContiguousBytes) throws {
        let key = SymmetricKey(data: bytes)
        guard key.bitCount == Self.byteCount * 8 else {
            throw CryptoFormatError(.malformedHeader, "a master key has \(Self.byteCount) bytes, not \(key.bitCount / 8)")
        }
        self.stored = SealedKeyBytes(key: key)
        self.id = key.withUnsafeBytes { String(SHA256.hash(data: $0).hexString.prefix(Self.idLength)) }
    }

    /// A new random master key.
    public static func generate() -> MasterKey {
        // 32 random bytes always make a valid key.
        try! MasterKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    public var description: String { "MasterKey(id: \(id))" }

    /// The key in the file at `path`, created (32 random bytes, mode 0600) when the file does not exist.
    ///
    /// Refuses a file that group or others may access, that is not a regular file, or that does not hold
    /// exactly 32 bytes. Creation is atomic (written to a temporary file, then linked into place), so
    /// several instances starting at once on a shared folder all end up with the same key.
    public static func loadOrCreate(at path: String) throws -> MasterKey {
        if let existing = try load(at: path, missingIsNil: true) { return existing }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw KeyFileError(path: path, "cannot create its folder: \(error.localizedDescription)")
            }
        }
        let temporary = path + ".tmp-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KeyFileError(path: path, "cannot create it: \(errnoText())") }
        defer { unlink(temporary) }
        var bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        defer { bytes.withUnsafeMutableBytes { memset_s_portable($0) } }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else {
            throw KeyFileError(path: path, "cannot write it: \(errnoText())")
        }
        if link(temporary, path) != 0 {
            guard errno == EEXIST else { throw KeyFileError(path: path, "cannot create it: \(errnoText())") }
            // Another instance created it first: use theirs.
        }
        guard let key = try load(at: path, missingIsNil: false) else {
            throw KeyFileError(path: path, "it vanished while being created")
        }
        return key
    }

    /// The key in the existing file at `path` (same checks as `loadOrCreate`).
    public static func load(at path: String) throws -> MasterKey {
        // missingIsNil false never returns nil.
        try load(at: path, missingIsNil: false)!
    }

    private static func load(at path: String, missingIsNil: Bool) throws -> MasterKey? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT && missingIsNil { return nil }
            throw KeyFileError(path: path, "cannot open it: \(errnoText())")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw KeyFileError(path: path, "cannot stat it: \(errnoText())") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw KeyFileError(path: path, "it is not a regular file") }
        let permissions = info.st_mode & 0o777
        guard permissions & 0o077 == 0 else {
            throw KeyFileError(
                path: path,
                "group or others may access it (mode \(String(permissions, radix: 8))); run `chmod 600 \(path)`")
        }
        guard info.st_size == byteCount else {
            throw KeyFileError(path: path, "it holds \(info.st_size) bytes, a master key is exactly \(byteCount)")
        }
        var bytes = [UInt8](repeating: 0, count: byteCount)
        defer { bytes.withUnsafeMutableBytes { memset_s_portable($0) } }
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, byteCount) }
        guard count == byteCount else { throw KeyFileError(path: path, "cannot read it: \(errnoText())") }
        return try MasterKey(bytes: bytes)
    }

    // MARK: wrapping data keys

    /// Size of a wrapped data key: nonce (12) ‖ ciphertext (32) ‖ tag (16).
    public static let wrappedKeySize = 12 + 32 + 16

    private var wrapAAD: Data { Data("rampart-dek-v1".utf8) + Data(id.utf8) }

    /// `dataKey` sealed with AES-256-GCM under this key (random nonce, AAD "rampart-dek-v1" ‖ key id).
    public func wrap(_ dataKey: DataKey) -> Data {
        let sealed = dataKey.key.withUnsafeBytes { plain in
            // Sealing with a valid 256-bit key and a random nonce cannot fail.
            try! AES.GCM.seal(Data(plain), using: key, nonce: AES.GCM.Nonce(), authenticating: wrapAAD)
        }
        return sealed.combined!
    }

    /// The data key in `wrapped`; throws `.keyUnwrapFailed` when it does not authenticate under this key.
    public func unwrap(_ wrapped: Data) throws -> DataKey {
        guard wrapped.count == Self.wrappedKeySize else {
            throw CryptoFormatError(.malformedHeader, "a wrapped data key has \(Self.wrappedKeySize) bytes, not \(wrapped.count)")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: wrapped)
            let plain = try AES.GCM.open(box, using: key, authenticating: wrapAAD)
            return DataKey(key: SymmetricKey(data: plain))
        } catch {
            throw CryptoFormatError(
                .keyUnwrapFailed, "the data key does not authenticate under master key \(id) (damaged header?)")
        }
    }
}

extension MasterKey {
    // MARK: sealing small secrets

    /// `secret` sealed with AES-256-GCM under this key: nonce (12) ‖ ciphertext ‖ tag (16), with AAD
    /// "rampart-secret-v1" ‖ `context` ‖ key id, so a sealed secret cannot be moved to another use.
    public func seal(secret: [UInt8], context: String) -> Data {
        // Sealing with a valid 256-bit key and a random nonce cannot fail.
        try! AES.GCM.seal(Data(secret), using: key, nonce: AES.GCM.Nonce(), authenticating: secretAAD(context))
            .combined!
    }

    /// The secret in `sealed` (made by `seal(secret:context:)` with the same context); throws
    /// `.keyUnwrapFailed` when it does not authenticate under this key and context.
    public func unseal(_ sealed: Data, context: String) throws -> [UInt8] {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return Array(try AES.GCM.open(box, using: key, authenticating: secretAAD(context)))
        } catch {
            throw CryptoFormatError(
                .keyUnwrapFailed, "a sealed secret (\(context)) does not authenticate under master key \(id)")
        }
    }

    private func secretAAD(_ context: String) -> Data {
        Data("rampart-secret-v1".utf8) + Data(context.utf8) + Data(id.utf8)
    }
}

/// One object's data key (32 random bytes); never shown in a description.
public struct DataKey: Sendable, CustomStringConvertible {
    private let stored: SealedKeyBytes
    var key: SymmetricKey { stored.key }

    init(key: SymmetricKey) { self.stored = SealedKeyBytes(key: key) }

    /// A new random data key.
    public static func generate() -> DataKey { DataKey(key: SymmetricKey(size: .bits256)) }

    public var description: String { "DataKey(redacted)" }
}


/// A `SymmetricKey` (immutable once made) carried across concurrency domains.
struct SealedKeyBytes: @unchecked Sendable {
    let key: SymmetricKey
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// Overwrites a buffer with zeros (best effort: keeps key bytes from lingering in freed memory).
func memset_s_portable(_ buffer: UnsafeMutableRawBufferPointer) {
    guard let base = buffer.baseAddress else { return }
    memset(base, 0, buffer.count)
}
