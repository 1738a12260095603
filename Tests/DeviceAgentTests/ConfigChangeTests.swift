import Foundation
import RampartArchive
import RampartConfigDiff
import Testing

@testable import DeviceAgentCore

@Suite("P17: the simulated device's exports — volatile lines on every export, changes an operator makes")
struct ConfigChangeTests {
    /// The tree an export at `date` holds (path → contents).
    func exported(_ folder: DeviceFolder, at date: Date) throws -> [String: Data] {
        var tree: [String: Data] = [:]
        for file in try folder.exportStreams(at: date) {
            var contents = Data()
            try file.contents { contents.append($0) }
            tree[file.path] = contents
        }
        return tree
    }

    @Test("P17: two exports of an unchanged device differ in bytes, only in what the normalisation rules take out")
    func volatile() throws {
        let path = temporaryPath("volatile")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DeviceFolder.initialize(at: path, facts: sampleFacts())
        let first = try exported(folder, at: Date(timeIntervalSince1970: 1_800_000_000))
        let second = try exported(folder, at: Date(timeIntervalSince1970: 1_800_000_777.5))
        #expect(first["running-config"] != second["running-config"])
        let text = String(decoding: try #require(first["running-config"]), as: UTF8.self)
        #expect(text.hasPrefix(": Saved\n: Written by enable_15 at 08:00:00.000 UTC Fri Jan 15 2027\n"))
        #expect(text.contains("\nntp clock-period ") && text.contains("\nCryptochecksum:"))
        let diff = TreeDiff.compare(old: first, new: second)
        #expect(diff.isEmpty && diff.volatileOnly == 1, "\(diff.files.map(\.unified))")
        #expect(ConfigFingerprint(tree: first) == ConfigFingerprint(tree: second))
        // A restored file (holding an export's lines) is exported with one banner, not two.
        try DeviceFolder.write(try #require(first["running-config"]), to: path + "/config/running-config", mode: 0o644)
        let again = String(decoding: try #require(try exported(folder, at: Date())["running-config"]), as: UTF8.self)
        #expect(again.components(separatedBy: ": Saved").count == 2 && again.components(separatedBy: "Cryptochecksum").count == 2)
    }

    @Test("P17: change-config moves the location, adds an access rule and rotates a key; the diff names each, the key as secret")
    func change() throws {
        let path = temporaryPath("change")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DeviceFolder.initialize(at: path, facts: sampleFacts())
        let before = try exported(folder, at: Date())
        let written = try folder.change(ConfigChange(location: "dc-9 rack 4", accessRule: "allow-backup-admin", rotateKey: "https-server"))
        #expect(written == ["running-config", "policies/access-policy.json", "pki/https-server.crt", "pki/https-server.key"])
        let after = try exported(folder, at: Date())
        let diff = TreeDiff.compare(old: before, new: after)
        #expect(diff.files.map(\.path) == ["pki/https-server.crt", "pki/https-server.key", "policies/access-policy.json", "running-config"])
        #expect(diff.files.map(\.summary) == [
            "changed, +6 -6 lines", "changed (secret)", "changed, +2 -1 lines", "changed, +1 -1 lines",
        ])
        #expect(diff.files[3].unified.contains("+snmp-server location dc-9 rack 4"))
        #expect(diff.files[2].unified.contains("\"name\": \"allow-backup-admin\""))
        // The new access policy is still JSON, and the key still decrypts (the export read it).
        #expect(try JSONSerialization.jsonObject(with: try #require(after["policies/access-policy.json"])) is [String: Any])
        #expect(after["pki/https-server.key"] != before["pki/https-server.key"])
        #expect(throws: AgentError.self) { try folder.change(ConfigChange(rotateKey: "no-such-key")) }
    }
}
