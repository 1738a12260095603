import Crypto
import Foundation
import RampartBasics

/// What a real appliance writes anew on every export, which the simulated one imitates so that two
/// backups of an unchanged device differ in their bytes as a real device's do (Rampart's diff then has
/// to normalise them away, docs/config-diff.md): `running-config` gets a banner with the export's time
/// (`: Saved`, `: Written by enable_15 at …`), the clock's measured drift (`ntp clock-period N`) and a
/// checksum over the export (`Cryptochecksum:`). The stored file is left alone; what was added by an
/// earlier export (a restored backup's file holds it) is replaced, not repeated.
enum VolatileExport {
    static let runningConfig = "running-config"

    /// The volatile lines of a stored running-config, dropped before new ones are written.
    static func isVolatile(_ line: Substring) -> Bool {
        line.hasPrefix(": Saved") || line.hasPrefix(": Written by ") || line.hasPrefix("Cryptochecksum:")
            || line.hasPrefix("ntp clock-period ")
    }

    /// `stored` as exported at `date`.
    static func runningConfig(_ stored: Data, at date: Date) -> Data {
        var lines = String(decoding: stored, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        lines.removeAll(where: isVolatile)
        let millis = date.unixMillis
        let period = 36_000_000 + Int(UInt64(bitPattern: millis) % 4001) - 2000
        let drift = Substring("ntp clock-period \(period)")
        if let ntp = lines.firstIndex(where: { $0.hasPrefix("ntp server ") }) {
            lines.insert(drift, at: ntp)
        } else {
            lines.append(drift)
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "HH:mm:ss.SSS 'UTC' EEE MMM d yyyy"
        let body = lines.joined(separator: "\n") + "\n"
        let banner = ": Saved\n: Written by enable_15 at \(formatter.string(from: date))\n"
        let checksum = SHA256.hash(data: Data((banner + body).utf8)).prefix(16).hexString
        return Data((banner + body + "Cryptochecksum:\(checksum)\n").utf8)
    }
}

/// A change an operator makes to a simulated device's configuration (`device-agent change-config`), so
/// that tests and demonstrations show real differences between backups.
public struct ConfigChange: Sendable, Equatable {
    /// A new `snmp-server location` in running-config.
    public var location: String?
    /// The name of an access rule appended to policies/access-policy.json.
    public var accessRule: String?
    /// A certificate whose private key (and certificate) are replaced: `pki/NAME.key`, `pki/NAME.crt`.
    public var rotateKey: String?

    public init(location: String? = nil, accessRule: String? = nil, rotateKey: String? = nil) {
        self.location = location
        self.accessRule = accessRule
        self.rotateKey = rotateKey
    }

    /// Whether the change changes nothing.
    public var isEmpty: Bool { location == nil && accessRule == nil && rotateKey == nil }
}

extension DeviceFolder {
    /// Applies `change` to the stored configuration tree; returns the paths written (relative to config/).
    /// Each file is replaced whole (written aside and renamed), so an export running meanwhile reads the
    /// old file or the new one, and refuses a file that changed under it (ABORTED: try again).
    @discardableResult
    public func change(_ change: ConfigChange) throws -> [String] {
        var written: [String] = []
        if let location = change.location {
            guard !location.isEmpty, !location.contains("\n") else { throw AgentError("a location is one line of text") }
            let path = configPath + "/" + VolatileExport.runningConfig
            let text = try Self.text(path)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if let index = lines.firstIndex(where: { $0.hasPrefix("snmp-server location ") }) {
                lines[index] = "snmp-server location \(location)"
            } else {
                let end = lines.last == "" ? lines.count - 1 : lines.count
                lines.insert("snmp-server location \(location)", at: end)
            }
            try Self.write(Data(lines.joined(separator: "\n").utf8), to: path, mode: 0o644)
            written.append(VolatileExport.runningConfig)
        }
        if let name = change.accessRule {
            guard !name.isEmpty, !name.contains("\n") else { throw AgentError("a rule name is one line of text") }
            let relative = "policies/access-policy.json"
            let path = configPath + "/" + relative
            let text = try Self.text(path)
            guard let close = text.range(of: "\n  ]\n}", options: .backwards) else {
                throw AgentError("\(relative) does not end with its rules list")
            }
            let next = text.components(separatedBy: "{\"id\": ").count
            let rule =
                "    {\"id\": \(next), \"name\": \(ConfigGenerator.quoted(name)), \"enabled\": true, \"action\": \"allow\", "
                + "\"source_zone\": \"inside\", \"destination_zone\": \"outside\", \"source\": \"10.0.0.0/8\", "
                + "\"destination\": \"198.51.100.10/32\", \"port\": \"tcp/8443\", \"application\": \"HTTPS\", "
                + "\"intrusion_policy\": \"Balanced Security and Connectivity\", \"log\": \"end\", \"hits\": 0}"
            let updated = text[..<close.lowerBound] + ",\n" + rule + text[close.lowerBound...]
            try Self.write(Data(updated.utf8), to: path, mode: 0o644)
            written.append(relative)
        }
        if let name = change.rotateKey {
            let keyPath = configPath + "/pki/\(name)" + Self.encryptedKeySuffix
            guard FileManager.default.fileExists(atPath: keyPath) else {
                let known = ((try? FileManager.default.contentsOfDirectory(atPath: configPath + "/pki")) ?? [])
                    .filter { $0.hasSuffix(Self.encryptedKeySuffix) }.map { String($0.dropLast(Self.encryptedKeySuffix.count)) }
                    .sorted()
                throw AgentError("no private key pki/\(name).key (keys: \(known.joined(separator: ", ")))")
            }
            var random = SeededGenerator(seed: UInt64.random(in: 0...UInt64.max))
            let key = ConfigGenerator.privateKey(&random)
            let sealed = try Self.encrypt(
                Data((key.pemRepresentation + "\n").utf8), key: try deviceKey(), path: "pki/\(name)" + Self.encryptedKeySuffix)
            try Self.write(sealed, to: keyPath, mode: 0o600)
            let certificate = ConfigGenerator.certificate(
                subject: "CN=\(facts.name).\(name).corp.example", issuer: "CN=Corp Issuing CA 1", publicKey: key.publicKey,
                random: &random)
            try Self.write(Data(certificate.utf8), to: configPath + "/pki/\(name).crt", mode: 0o644)
            written += ["pki/\(name).crt", "pki/\(name).key"]
        }
        return written
    }

    private static func text(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw AgentError("\(path) cannot be read") }
        return String(decoding: data, as: UTF8.self)
    }
}
