import Crypto
import DeviceAgentCore
import Foundation
import Logging
import RampartAPI
import RampartArchive
import RampartProto
import Testing

/// `RestoreDrill` in-process: the device's real restore code onto a throwaway replacement, no bus (P18).
@Suite("P18: a restore drill restores a backup onto a throwaway replacement and checks it")
struct RestoreDrillTests {
    /// The original appliance as inventory has it.
    static func original(software: String = "7.4.1") -> Rampart_Inventory_V1_Device {
        var facts = sampleFacts(configSize: 32 * 1024)
        facts.software = software
        var device = facts.inventoryDevice
        device.id = originalDeviceId
        return device
    }

    /// A drill of a fresh backup of the original; returns the report and the scratch folder (removed by the caller).
    static func drill(
        original: Rampart_Inventory_V1_Device = original(), expected: ((String) -> String)? = nil,
        damage: ((inout Data) -> Void)? = nil
    ) async throws -> (Rampart_Backup_V1_DrillReport, String, Data) {
        let (archive, originalFolder) = try await makeBackup()
        try? FileManager.default.removeItem(atPath: originalFolder)
        var stored = archive
        damage?(&stored)
        let archivePath = temporaryPath("drill-archive") + ".tar"
        try stored.write(to: URL(fileURLWithPath: archivePath))
        defer { try? FileManager.default.removeItem(atPath: archivePath) }
        let sha256 = SHA256.hash(data: archive).map { String(format: "%02x", $0) }.joined()
        let directory = temporaryPath("drill")
        let report = await RestoreDrill.run(
            .init(
                directory: directory, archivePath: archivePath, fileName: "fw-edge-01_20250131T120000Z.tar",
                expectedSHA256: expected?(sha256) ?? sha256, original: original),
            logger: Logger(label: "test"))
        return (report, directory, archive)
    }

    @Test("P18, R10, R11: a drill restores through the device's restore code under a local lease; tree equal, VPN removed, keys re-encrypted")
    func restorable() async throws {
        let (report, directory, _) = try await Self.drill()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(report.passed, "\(report.reason)\n\(report.console.joined(separator: "\n"))")
        #expect(report.hashesVerified && report.treeEqual && report.vpnRemoved && report.keysReencrypted)
        #expect(report.reencryptedKeys > 0 && !report.removedVpnCertificates.isEmpty, "\(report)")
        #expect(report.steps == ["granted", "applying", "applied", "rebooting", "rejoined"])
        #expect(report.checks.map(\.name) == ["replacement", "archive hashes", "restore", "tree", "R10", "R11"])
        #expect(!report.manifestJson.isEmpty && report.archiveSha256.count == 64)
        // The replacement has a drill serial, never the original's, and is restored as the backup's device.
        let facts = try JSONDecoder().decode(
            DeviceProfile.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/facts.json")))
        #expect(facts.serial.hasPrefix("DRILL") && facts.serial != Self.original().serial)
        #expect(facts.name == "fw-edge-01" && facts.managementIp == "10.0.0.11")
        #expect(!FileManager.default.fileExists(atPath: directory + "/config/vpn"))
        let attributes = try FileManager.default.attributesOfItem(atPath: directory)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700, "the scratch folder holds decrypted keys")
    }

    @Test("P18: an archive that is not the one the backup record names fails its drill at the archive hashes")
    func wrongHash() async throws {
        let (report, directory, _) = try await Self.drill(expected: { _ in String(repeating: "0", count: 64) })
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(!report.passed && !report.hashesVerified)
        #expect(report.reason.hasPrefix("archive hashes: the archive's SHA-256 is"), "\(report.reason)")
    }

    @Test("P18: a damaged archive (one byte of a member changed) fails its drill at the archive hashes, nothing restored")
    func damaged() async throws {
        let (report, directory, _) = try await Self.drill(damage: { data in data[data.count / 2] ^= 0x20 })
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(!report.passed && !report.hashesVerified, "\(report)")
        #expect(report.reason.hasPrefix("archive hashes:"), "\(report.reason)")
        #expect(report.steps.isEmpty)
    }

    @Test("P18, R4: a device upgraded since its backup: a replacement at its version cannot restore it, the drill says why")
    func otherVersion() async throws {
        let (report, directory, _) = try await Self.drill(original: Self.original(software: "7.6.0"))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(!report.passed && report.hashesVerified)
        #expect(report.reason.hasPrefix("restore:") && report.reason.contains("R4"), "\(report.reason)")
        #expect(report.steps.isEmpty, "refused before any lease: \(report.steps)")
    }

    @Test("P18, R10, R11: the tree check fails on a VPN file left, a key in clear or under the old key, a changed or extra file")
    func treeCheck() async throws {
        let (report, directory, archive) = try await Self.drill()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(report.passed, "\(report.reason)")
        let listing = try RestorePreflight.inspect(
            .data(archive), fileName: "fw-edge-01_20250131T120000Z.tar", device: sampleFacts()
        ).listing
        let restored = tree(directory + "/config")
        let newKey = try Data(contentsOf: URL(fileURLWithPath: directory + "/device.key"))
        let oldKey = Data(repeating: 7, count: 32)
        let certificates = report.removedVpnCertificates
        func compare(_ tree: [String: Data], newKey: Data = newKey, removed: [String] = certificates) -> DrillTreeCheck.Result {
            DrillTreeCheck.compare(
                archive: listing.files, restored: tree, newKey: newKey, previousKey: oldKey, removedCertificates: removed)
        }
        let clean = compare(restored)
        #expect(clean.treeProblems.isEmpty && clean.vpnProblems.isEmpty && clean.keyProblems.isEmpty, "\(clean)")
        #expect(clean.keys == Int(report.reencryptedKeys) && clean.vpnFiles > 0)

        var vpnLeft = restored
        vpnLeft["vpn/certs/left.crt"] = Data("x".utf8)
        #expect(compare(vpnLeft).vpnProblems == ["vpn/certs/left.crt is left after the restore (R10)"])
        #expect(!compare(restored, removed: []).vpnProblems.isEmpty, "a certificate of the backup not reported removed")

        let keyPath = try #require(restored.keys.first { $0.hasSuffix(".key.enc") })
        let clearPath = String(keyPath.dropLast(4))
        let clearKey = try #require(listing.files.first { $0.path == clearPath })
        var inClear = restored
        inClear[keyPath] = nil
        inClear[clearPath] = Data(repeating: 1, count: clearKey.size)
        #expect(compare(inClear).keyProblems == ["\(clearPath) is stored in clear (R11)"])
        let otherKey = compare(restored, newKey: Data(repeating: 9, count: 32)).keyProblems
        #expect(otherKey.count == clean.keys && otherKey.allSatisfy { $0.hasSuffix("does not open with the new device key (R11)") },
                "sealed under another key than the new one: \(otherKey)")
        let sameKey = DrillTreeCheck.compare(
            archive: listing.files, restored: restored, newKey: newKey, previousKey: newKey, removedCertificates: certificates)
        #expect(sameKey.keyProblems.contains("the device key after the restore is the one before it (R11)"))
        #expect(sameKey.keyProblems.contains { $0.hasSuffix("still opens with the previous device key (R11)") })

        let plain = try #require(restored.keys.sorted().first { !$0.hasSuffix(".enc") })
        var changed = restored
        changed[plain] = Data("changed".utf8)
        changed["extra.conf"] = Data()
        #expect(compare(changed).treeProblems == ["\(plain) differs from the archive's", "extra.conf is not in the archive"])
        var missing = restored
        missing[plain] = nil
        #expect(compare(missing).treeProblems == ["\(plain) is missing"])
    }
}
