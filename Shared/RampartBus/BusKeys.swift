import Foundation
import Logging
import RampartProto
import RampartRPC
import Synchronization
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

extension BusRole {
    /// The sub-folder of a key folder where keys of this role live ("operators", "devices", "services").
    public var folder: String {
        switch self {
        case .admin, .operator, .viewer: "operators"
        case .device: "devices"
        case .service: "services"
        }
    }
}

/// Who is calling: the authenticated key, its name and role (`RequestHeader.caller`, set by the broker).
public struct CallerIdentity: Sendable, Hashable, CustomStringConvertible {
    /// Z85 CURVE public key ("" in plain mode).
    public var key: String
    public var name: String
    public var role: BusRole

    public init(key: String, name: String, role: BusRole) {
        self.key = key
        self.name = name
        self.role = role
    }

    /// The identity in a request header, or nil when the header carries none (or an unknown role).
    public init?(_ caller: Rampart_Bus_V1_Caller) {
        guard !caller.name.isEmpty, let role = BusRole(rawValue: caller.role) else { return nil }
        self.init(key: caller.key, name: caller.name, role: role)
    }

    /// As carried in a request header.
    public var proto: Rampart_Bus_V1_Caller {
        var caller = Rampart_Bus_V1_Caller()
        caller.key = key
        caller.name = name
        caller.role = role.rawValue
        return caller
    }

    /// The first 8 characters of the key, for logs and tables.
    public var shortKey: String { String(key.prefix(8)) }

    public var description: String { key.isEmpty ? "\(name) (\(role.rawValue))" : "\(name) (\(role.rawValue), key \(shortKey))" }
}

/// A key file, a key folder or an authorized-keys file that cannot be used.
public struct BusKeyError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Names of keys: what `rampart keys` accepts and the broker prints.
public enum KeyName {
    /// 1–64 of letters, digits, `.`, `_`, `-`, `@`; not starting with `.` or `-`.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), bytes[0] != UInt8(ascii: "."), bytes[0] != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "@")
        }
    }
}

/// One process's bus key: its name, role, CURVE key pair and — except for the broker's own — the
/// broker's public key. A text file of `name = value` lines, mode 0600 (docs/security.md).
public struct BusKeyFile: Sendable, Equatable {
    /// The role written in a broker's key file.
    public static let brokerRole = "broker"

    public var name: String
    /// A `BusRole` raw value, or "broker".
    public var role: String
    public var keys: CurveKeyPair
    /// The broker's public key; nil in the broker's own file.
    public var brokerKey: String?

    public init(name: String, role: String, keys: CurveKeyPair, brokerKey: String?) {
        self.name = name
        self.role = role
        self.keys = keys
        self.brokerKey = brokerKey
    }

    /// The file's text.
    public var text: String {
        var lines = [
            "# Rampart bus key of '\(name)' (\(role)). It holds a SECRET key: keep this file mode 0600.",
            "name = \(name)",
            "role = \(role)",
            "public-key = \(keys.publicKey)",
            "secret-key = \(keys.secretKey)",
        ]
        if let brokerKey { lines.append("broker-key = \(brokerKey)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses a key file's text; `path` only names it in errors.
    public static func parse(_ text: String, path: String) throws -> BusKeyFile {
        var values: [String: String] = [:]
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw BusKeyError("\(path):\(number + 1): expected 'name = value'")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard values[key] == nil else { throw BusKeyError("\(path):\(number + 1): '\(key)' appears twice") }
            values[key] = value
        }
        func required(_ key: String) throws -> String {
            guard let value = values[key], !value.isEmpty else { throw BusKeyError("\(path): no '\(key)'") }
            return value
        }
        let name = try required("name")
        guard KeyName.isValid(name) else { throw BusKeyError("\(path): '\(name)' is not a valid key name") }
        let role = try required("role")
        guard role == brokerRole || BusRole(rawValue: role) != nil else {
            throw BusKeyError("\(path): unknown role '\(role)' (admin, operator, viewer, device, service or broker)")
        }
        let keys: CurveKeyPair
        do {
            keys = try CurveKeyPair(publicKey: try required("public-key"), secretKey: try required("secret-key"))
        } catch let error as CurveError {
            throw BusKeyError("\(path): \(error.description)")
        }
        let brokerKey = values["broker-key"]
        if let brokerKey, !Curve.isKey(brokerKey) { throw BusKeyError("\(path): broker-key is not a Z85-encoded key") }
        if role != brokerRole && brokerKey == nil { throw BusKeyError("\(path): no 'broker-key'") }
        return BusKeyFile(name: name, role: role, keys: keys, brokerKey: brokerKey)
    }

    /// Reads a key file, refusing one that others may read or write (it holds a secret key).
    public static func load(_ path: String) throws -> BusKeyFile {
        try KeyFileMode.requirePrivate(path)
        guard let data = FileManager.default.contents(atPath: path) else { throw BusKeyError("\(path): cannot be read") }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Writes the file with mode 0600, refusing to replace an existing one.
    public func write(to path: String) throws {
        try KeyFileMode.writeNew(path, contents: Data(text.utf8))
    }
}

/// File-mode rules of key files.
public enum KeyFileMode {
    /// Refuses a file whose mode lets anyone but its owner read or write it.
    public static func requirePrivate(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw BusKeyError("\(path): \(String(cString: strerror(errno)))")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw BusKeyError(
                "\(path) has mode \(String(mode, radix: 8)): a key file must be readable by its owner only; run: chmod 600 \(path)")
        }
    }

    /// Creates `path` with mode 0600 (never more, whatever the umask) and writes `contents`;
    /// refuses when it exists.
    public static func writeNew(_ path: String, contents: Data) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BusKeyError("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = fchmod(fd, 0o600)
        try contents.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw BusKeyError("\(path): \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
        guard fsync(fd) == 0 else { throw BusKeyError("\(path): fsync: \(String(cString: strerror(errno)))") }
    }
}

/// The broker's list of admitted keys: one `ROLE NAME PUBLIC-KEY` line per key (`authorized_keys` of
/// a key folder). Only public keys, but whoever can write it can admit anyone: it must be mode 0600
/// too.
public struct AuthorizedKeys: Sendable, Equatable {
    /// One admitted key: the identity its callers have.
    public typealias Entry = CallerIdentity

    public private(set) var entries: [Entry]
    private var byKey: [String: Int]

    public init(entries: [Entry]) throws {
        self.entries = []
        self.byKey = [:]
        for entry in entries { try add(entry) }
    }

    /// Adds `entry`; refuses a key or a name already present.
    public mutating func add(_ entry: Entry) throws {
        guard Curve.isKey(entry.key) else { throw BusKeyError("'\(entry.key)' is not a Z85-encoded key") }
        guard KeyName.isValid(entry.name) else { throw BusKeyError("'\(entry.name)' is not a valid key name") }
        guard byKey[entry.key] == nil else { throw BusKeyError("key \(entry.key.prefix(8))… is listed twice") }
        guard !entries.contains(where: { $0.name == entry.name && $0.role.folder == entry.role.folder }) else {
            throw BusKeyError("a key named '\(entry.name)' is already listed")
        }
        byKey[entry.key] = entries.count
        entries.append(entry)
    }

    /// Removes the entries named `name`; returns how many were removed.
    public mutating func remove(name: String) -> Int {
        let before = entries.count
        entries.removeAll { $0.name == name }
        byKey = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.key, $0) })
        return before - entries.count
    }

    /// The identity a public key is admitted as, or nil.
    public func identity(forKey key: String) -> CallerIdentity? {
        byKey[key].map { entries[$0] }
    }

    /// The file's text.
    public var text: String {
        "# Rampart authorized bus keys: ROLE NAME PUBLIC-KEY. Whoever can write this file can admit anyone.\n"
            + entries.map { "\($0.role.rawValue) \($0.name) \($0.key)\n" }.joined()
    }

    public static func parse(_ text: String, path: String) throws -> AuthorizedKeys {
        var result = try AuthorizedKeys(entries: [])
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count == 3, let role = BusRole(rawValue: fields[0]) else {
                throw BusKeyError("\(path):\(number + 1): expected 'ROLE NAME PUBLIC-KEY' with ROLE one of admin, operator, viewer, device, service")
            }
            do {
                try result.add(Entry(key: fields[2], name: fields[1], role: role))
            } catch let error as BusKeyError {
                throw BusKeyError("\(path):\(number + 1): \(error.description)")
            }
        }
        return result
    }

    /// Reads the file, refusing one that others may read or write.
    public static func load(_ path: String) throws -> AuthorizedKeys {
        try KeyFileMode.requirePrivate(path)
        guard let data = FileManager.default.contents(atPath: path) else { throw BusKeyError("\(path): cannot be read") }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Replaces the file atomically (temporary file, mode 0600, rename).
    public func save(to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        try KeyFileMode.writeNew(temporary, contents: Data(text.utf8))
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw BusKeyError("\(path): rename: \(String(cString: strerror(errno)))")
        }
    }
}

/// The authorized-keys file as the broker sees it: re-read when it changes (checked at most every
/// `recheckMs`), so `rampart keys add` and `rampart keys revoke` take effect without a restart — a
/// revoked key is refused from its next request on. A file that becomes unreadable or invalid keeps
/// the last good list (and says so in the log).
public final class AuthorizedKeysSource: Sendable {
    private struct State {
        var keys: AuthorizedKeys
        var stamp: [Int]
        var checkedAt: Int64
        var removals: UInt64 = 0
    }

    public let path: String
    private let recheckMs: Int64
    private let logger: Logger
    private let state: Mutex<State>

    /// Loads `path` (throws when it cannot be used at start).
    public init(path: String, recheckMs: Int64 = 500, logger: Logger) throws {
        self.path = path
        self.recheckMs = recheckMs
        self.logger = logger
        // The stamp before the read: a file replaced in between (`rampart keys add` while the bus
        // starts) then differs from it at the next check and is read again, instead of never.
        let stamp = Self.stamp(path)
        let keys = try AuthorizedKeys.load(path)
        state = Mutex(State(keys: keys, stamp: stamp, checkedAt: unixMillis()))
    }

    /// The current list, re-read first when the file changed (looked at every `recheckMs` at most).
    public var current: AuthorizedKeys { current(maxAgeMs: recheckMs) }

    /// The current list, the file looked at first unless that was done less than `maxAgeMs` ago. The
    /// ZAP handler passes 0: a new connection is rare next to requests, and a key just added works at once.
    public func current(maxAgeMs: Int64) -> AuthorizedKeys {
        let now = unixMillis()
        let (keys, recheck) = state.withLock { state -> (AuthorizedKeys, Bool) in
            guard now - state.checkedAt >= maxAgeMs else { return (state.keys, false) }
            state.checkedAt = now
            return (state.keys, true)
        }
        guard recheck else { return keys }
        let stamp = Self.stamp(path)
        guard stamp != state.withLock({ $0.stamp }) else { return keys }
        do {
            let fresh = try AuthorizedKeys.load(path)
            state.withLock {
                let kept = Set(fresh.entries.map(\.key))
                if $0.keys.entries.contains(where: { !kept.contains($0.key) }) { $0.removals += 1 }
                $0.keys = fresh
                $0.stamp = stamp
            }
            logger.notice("authorized keys reloaded", metadata: ["path": "\(path)", "keys": "\(fresh.entries.count)"])
            return fresh
        } catch {
            state.withLock { $0.stamp = stamp }
            logger.error("authorized keys not reloaded; the previous list stays in force", metadata: ["error": "\(error)"])
            return keys
        }
    }

    /// How many reloads so far removed a key (a revocation): those who hold a connection admitted
    /// before must be made to reconnect (the event stream does; the broker checks every request).
    public var removals: UInt64 { state.withLock { $0.removals } }

    private static func stamp(_ path: String) -> [Int] {
        var info = stat()
        guard stat(path, &info) == 0 else { return [] }
        return [Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec)]
    }
}

/// How a process talks to the bus.
public enum BusSecurity: Sendable, Equatable {
    /// No authentication, no encryption: loopback only, asked for explicitly (`--insecure-plain`).
    case plain
    /// CURVE with this process's key, talking only to the broker whose public key it holds.
    case curve(BusKeyFile)
    /// A service instance inside the bus process, over inproc (which never uses CURVE), when the bus
    /// itself runs CURVE: its callers are authenticated by the broker.
    case inproc

    /// The identity this process has on the bus, when it has one.
    public var name: String? {
        if case .curve(let file) = self { return file.name }
        return nil
    }

    /// Prepares a client-side socket (DEALER, SUB) before it connects.
    public func apply(to socket: ZMQSocket) throws {
        guard case .curve(let file) = self else { return }  // plain, or inproc
        guard let brokerKey = file.brokerKey else { throw BusKeyError("key '\(file.name)' has no broker key") }
        try socket.makeCurveClient(file.keys, serverKey: brokerKey)
    }
}

/// Endpoint checks for the plain mode.
public enum BusEndpoints {
    /// Whether `endpoint` can only be reached from this machine: tcp on 127.0.0.0/8, ::1 or localhost,
    /// or ipc/inproc.
    public static func isLoopback(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        var rest = endpoint.dropFirst("tcp://".count)
        // A connect endpoint may name a source: "tcp://src;dst".
        if let semicolon = rest.firstIndex(of: ";") { rest = rest[rest.index(after: semicolon)...] }
        let host: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return false }
            host = rest[rest.index(after: rest.startIndex)..<close]
        } else {
            host = rest.split(separator: ":", maxSplits: 1).first ?? ""
        }
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".")
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}

