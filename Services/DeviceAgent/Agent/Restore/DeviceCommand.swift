import Foundation

/// Where a backup to restore comes from (R2).
public enum BackupSource: Sendable, Equatable, CustomStringConvertible {
    /// `location HOST USER PATH backup TAR-FILE`: fetched with the system scp client.
    case location(SCPLocation)
    /// `url URL`: a signed download link from `rampart links export` (L2).
    case url(URL)
    /// `backup TAR-FILE`: a file in the device's local backup folder (`DIR/backups/`).
    case local(fileName: String)

    /// The backup's file name (what the lease request names).
    public var fileName: String {
        switch self {
        case .location(let location): location.fileName
        case .url(let url): url.lastPathComponent
        case .local(let fileName): fileName
        }
    }

    public var description: String {
        switch self {
        case .location(let location): "\(location.remoteSpec) (scp\(location.port.map { ", port \($0)" } ?? ""))"
        // Scheme, host and port as given (the signature is left out: it is the link's secret).
        case .url(let url): "\(url.scheme ?? "http")://\(url.host ?? "")\(url.port.map { ":\($0)" } ?? "")/…/\(url.lastPathComponent)"
        case .local(let fileName): "backups/\(fileName) (local backup folder)"
        }
    }
}

/// A remote backup file reached over SSH: `USER@HOST:PATH/TAR-FILE`, port from `HOST:PORT`.
public struct SCPLocation: Sendable, Equatable {
    /// Host name, IPv4 address or bracketed IPv6 address ("[::1]").
    public var host: String
    /// The SSH port when the command gave one (`host:2222`).
    public var port: Int?
    /// The remote user.
    public var user: String
    /// The remote folder.
    public var path: String
    /// The backup file in that folder.
    public var fileName: String

    /// A location; the parser validates its parts.
    public init(host: String, port: Int? = nil, user: String, path: String, fileName: String) {
        self.host = host
        self.port = port
        self.user = user
        self.path = path
        self.fileName = fileName
    }

    /// `PATH/TAR-FILE` (one slash between them).
    public var remotePath: String {
        if path.hasSuffix("/") { return path + fileName }
        return path + "/" + fileName
    }

    /// scp's source argument: `USER@HOST:PATH/TAR-FILE`.
    public var remoteSpec: String { "\(user)@\(host):\(remotePath)" }
}

/// One line typed at the device CLI.
public enum DeviceCommand: Sendable, Equatable {
    /// `restore remote-manager-backup ...` (R1, R2).
    case restore(BackupSource)
    /// `restore remote-manager-backup check ...`: every check of a restore, changing nothing.
    case check(BackupSource)
    /// `help` (or `?`).
    case help
    /// `exit` (or `quit`, `logout`): ends the CLI session.
    case exit
    /// A blank line.
    case empty
}

/// The device CLI's grammar (R2):
///
/// ```
/// restore remote-manager-backup [check] location HOST USER PATH backup TAR-FILE
/// restore remote-manager-backup [check] url URL
/// restore remote-manager-backup [check] backup TAR-FILE
/// help | ?
/// exit | quit | logout
/// ```
///
/// Words are separated by blanks; keywords are case-insensitive, values are taken as typed. Values are
/// checked here, before anything runs: host names, user names and file names may not start with `-`
/// (they become scp arguments), TAR-FILE is a name without a folder, PATH holds no shell
/// metacharacters, URLs are http(s) with a file name at the end.
public enum DeviceCommandParser {
    /// Longest line accepted.
    public static let maxLineLength = 8192

    /// The help text.
    public static let help = """
        Commands:
          restore remote-manager-backup location HOST USER PATH backup TAR-FILE
              fetch USER@HOST:PATH/TAR-FILE with scp (HOST may be host:port) and restore it
          restore remote-manager-backup url URL
              download a signed backup link (from 'rampart links export') and restore it
          restore remote-manager-backup backup TAR-FILE
              restore TAR-FILE from this device's local backup folder (backups/)
          restore remote-manager-backup check location|url|backup ...
              run every check of that restore (archive, this device, the restore coordinator's) and say
              whether it would be granted; nothing is written, no lease is taken
          help
              this text
          exit
              log out
        A restore verifies the archive and compares this device with the backup (model, network modules,
        interfaces, software version and patch), asks the restore coordinator for a lease, overwrites all
        configuration (management IP included), removes every VPN certificate and all VPN configuration,
        re-encrypts private keys under a new device key, logs you out and reboots the device. A newer backup
        of the device than the one named is warned about; the restore goes ahead.
        """

    static let restoreUsage = """
        usage: restore remote-manager-backup [check] location HOST USER PATH backup TAR-FILE
               restore remote-manager-backup [check] url URL
               restore remote-manager-backup [check] backup TAR-FILE
        """

    /// The command on `line`; throws `RestoreError(.usage)` saying what is wrong.
    public static func parse(_ line: String) throws(RestoreError) -> DeviceCommand {
        guard line.utf8.count <= maxLineLength else {
            throw RestoreError(.usage, "the line is longer than \(maxLineLength) bytes")
        }
        guard !line.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7f }) else {
            throw RestoreError(.usage, "the line holds control characters")
        }
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let first = words.first else { return .empty }
        switch first.lowercased() {
        case "help", "?":
            guard words.count == 1 else { throw RestoreError(.usage, "'help' takes no arguments") }
            return .help
        case "exit", "quit", "logout":
            guard words.count == 1 else { throw RestoreError(.usage, "'\(first)' takes no arguments") }
            return .exit
        case "restore":
            let rest = Array(words.dropFirst())
            // restore remote-manager-backup check SOURCE: the same source, checked only.
            if rest.count >= 2, rest[0].lowercased() == "remote-manager-backup", rest[1].lowercased() == "check" {
                guard rest.count > 2 else {
                    throw RestoreError(
                        .usage,
                        "'restore remote-manager-backup check' needs 'location', 'url' or 'backup'\n" + restoreUsage)
                }
                return .check(try parseRestore([rest[0]] + rest.dropFirst(2)))
            }
            return .restore(try parseRestore(rest))
        default:
            throw RestoreError(.usage, "unknown command '\(printable(first))'; type 'help' for the commands")
        }
    }

    private static func parseRestore(_ words: [String]) throws(RestoreError) -> BackupSource {
        guard let kind = words.first else {
            throw RestoreError(.usage, "'restore' needs 'remote-manager-backup'\n" + restoreUsage)
        }
        guard kind.lowercased() == "remote-manager-backup" else {
            throw RestoreError(
                .usage,
                "unknown restore kind '\(printable(kind))': only 'remote-manager-backup' exists\n" + restoreUsage)
        }
        let rest = Array(words.dropFirst())
        guard let mode = rest.first else {
            throw RestoreError(
                .usage, "'restore remote-manager-backup' needs 'location', 'url' or 'backup'\n" + restoreUsage)
        }
        switch mode.lowercased() {
        case "location":
            // location HOST USER PATH backup TAR-FILE
            guard rest.count == 6, rest[4].lowercased() == "backup" else {
                throw RestoreError(
                    .usage,
                    "'restore remote-manager-backup location' takes HOST USER PATH backup TAR-FILE "
                        + "(got \(rest.count - 1) word\(rest.count == 2 ? "" : "s") after 'location')\n" + restoreUsage)
            }
            let (host, port) = try parseHost(rest[1])
            let user = try parseUser(rest[2])
            let path = try parsePath(rest[3])
            let file = try parseFileName(rest[5])
            return .location(SCPLocation(host: host, port: port, user: user, path: path, fileName: file))
        case "url":
            guard rest.count == 2 else {
                throw RestoreError(.usage, "'restore remote-manager-backup url' takes one URL\n" + restoreUsage)
            }
            return .url(try parseURL(rest[1]))
        case "backup":
            guard rest.count == 2 else {
                throw RestoreError(.usage, "'restore remote-manager-backup backup' takes one TAR-FILE\n" + restoreUsage)
            }
            guard !rest[1].contains("/") else {
                throw RestoreError(
                    .usage,
                    "TAR-FILE '\(printable(rest[1]))' must be a file name in the local backup folder, without a folder")
            }
            return .local(fileName: try parseFileName(rest[1]))
        default:
            throw RestoreError(
                .usage,
                "unknown source '\(printable(mode))': 'location', 'url' or 'backup' (after 'check' to check only)\n"
                    + restoreUsage)
        }
    }

    /// HOST or HOST:PORT; HOST a DNS name, an IPv4 address or a bracketed IPv6 address.
    static func parseHost(_ text: String) throws(RestoreError) -> (host: String, port: Int?) {
        var host = text
        var portText: String?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw RestoreError(.usage, "HOST '\(printable(text))' opens '[' without closing it")
            }
            host = String(text[...close])
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw RestoreError(.usage, "HOST '\(printable(text))': expected ':PORT' after ']'")
                }
                portText = String(after.dropFirst())
            }
            let inner = host.dropFirst().dropLast()
            guard !inner.isEmpty, inner.contains(":"), inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." })
            else {
                throw RestoreError(.usage, "HOST '\(printable(text))' is not a bracketed IPv6 address")
            }
        } else if let colon = text.lastIndex(of: ":") {
            guard text.firstIndex(of: ":") == colon else {
                throw RestoreError(
                    .usage, "HOST '\(printable(text))': write an IPv6 address in brackets, e.g. [::1]:2222")
            }
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
        }
        if !host.hasPrefix("[") {
            let allowed = host.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "."
                    || $0 == "-"
            }
            guard !host.isEmpty, host.utf8.count <= 253, allowed, !host.hasPrefix("-"), !host.hasPrefix("."),
                !host.hasSuffix("-")
            else {
                throw RestoreError(.usage, "HOST '\(printable(text))' is not a host name or an IP address")
            }
        }
        var port: Int?
        if let portText {
            guard let value = Int(portText), portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
                (1...65535).contains(value)
            else {
                throw RestoreError(.usage, "port '\(printable(portText))' in HOST must be a number from 1 to 65535")
            }
            port = value
        }
        return (host, port)
    }

    /// A login name: letters, digits, `.`, `_`, `-`; not starting with `-` or `.`; at most 32 characters.
    static func parseUser(_ text: String) throws(RestoreError) -> String {
        let allowed = text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "_"
                || $0 == "-"
        }
        guard !text.isEmpty, text.utf8.count <= 32, allowed, !text.hasPrefix("-"), !text.hasPrefix(".") else {
            throw RestoreError(
                .usage, "USER '\(printable(text))' must be a login name (letters, digits, '.', '_', '-'; at most 32)")
        }
        return text
    }

    /// A remote folder: letters, digits and `/ . _ - ~ + @ % = , :`; no shell metacharacters, at most 1024 bytes.
    static func parsePath(_ text: String) throws(RestoreError) -> String {
        let allowed = text.unicodeScalars.allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || "/._-~+@%=,:".unicodeScalars.contains(scalar)
        }
        guard !text.isEmpty, text.utf8.count <= 1024, allowed, !text.hasPrefix("-") else {
            throw RestoreError(
                .usage,
                "PATH '\(printable(text))' must be a folder of letters, digits and / . _ - ~ + @ % = , : (no spaces or shell characters)"
            )
        }
        return text
    }

    /// A file name without a folder: letters, digits and `. _ - + @ % = , : ~`; not `.`/`..`, not starting with `-`.
    static func parseFileName(_ text: String) throws(RestoreError) -> String {
        let allowed = text.unicodeScalars.allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || "._-+@%=,:~".unicodeScalars.contains(scalar)
        }
        guard !text.contains("/") else {
            throw RestoreError(.usage, "TAR-FILE '\(printable(text))' must be a file name, without a folder")
        }
        guard !text.isEmpty, text != ".", text != "..", text.utf8.count <= 255, allowed, !text.hasPrefix("-") else {
            throw RestoreError(
                .usage, "TAR-FILE '\(printable(text))' must be a file name of letters, digits and . _ - + @ % = , : ~")
        }
        return text
    }

    /// An http or https URL with a host and a file name as its last path component.
    static func parseURL(_ text: String) throws(RestoreError) -> URL {
        guard text.utf8.count <= 4096, let url = URL(string: text), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
        else {
            throw RestoreError(.usage, "URL '\(printable(text))' is not an http:// or https:// URL")
        }
        let name = url.lastPathComponent
        guard !name.isEmpty, name != "/", name != ".", name != "..", !name.contains("/") else {
            throw RestoreError(.usage, "URL '\(printable(text))' does not end with a backup file name")
        }
        return url
    }

    /// `text` shortened for an error message.
    static func printable(_ text: String) -> String {
        text.count > 80 ? String(text.prefix(77)) + "..." : text
    }
}
