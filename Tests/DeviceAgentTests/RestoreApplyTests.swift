import Crypto
import DeviceAgentCore
import Foundation
import RampartArchive
import Synchronization
import Testing

@Suite("R9–R11 restore apply on a real device folder (ConfigSwap)")
struct RestoreApplyTests {
    /// A verified backup of the original device and a replacement folder to restore it on.
    static func prepared() async throws -> (
        backup: VerifiedBackup, replacement: DeviceFolder, archive: Data, original: String
    ) {
        let (archive, original) = try await makeBackup()
        let replacement = try makeReplacement()
        let backup = try RestorePreflight.verify(
            archive, fileName: "fw-edge-01_20250131T120000Z.tar", device: replacement.facts)
        return (backup, replacement, archive, original)
    }

    static func cleanup(_ paths: String...) {
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }

    @Test(
        "R9: restore overwrites all configuration, management IP included; facts keep the replacement's hardware and serial"
    )
    func overwritesEverything() async throws {
        let (backup, replacement, archive, original) = try await Self.prepared()
        defer { Self.cleanup(original, replacement.path) }
        try Data("left over\n".utf8).write(
            to: URL(fileURLWithPath: replacement.configPath + "/policies/local-only.json"))
        var swap = try ConfigSwap.prepare(folder: replacement, backup: backup)
        try swap.swap()
        try swap.commit()

        let restored = try DeviceFolder.open(replacement.path)
        // R9: facts.json has the backup's name and management IP, the replacement's serial and hardware.
        #expect(restored.facts.managementIp == "10.0.0.11")
        #expect(restored.facts.name == "fw-edge-01")
        #expect(restored.facts.serial == "JAD9999Z007")
        #expect(
            restored.facts.model == replacement.facts.model && restored.facts.interfaces == replacement.facts.interfaces
        )
        // Every configuration file is the backup's (VPN aside), and nothing else is left.
        let exported = try restored.exportFiles()
        let expected = try BackupArchive.read(archive).files.filter { !$0.path.hasPrefix("vpn/") }
        #expect(exported == expected)
        #expect(!FileManager.default.fileExists(atPath: replacement.configPath + "/policies/local-only.json"))
        let management = String(
            decoding: try #require(FileManager.default.contents(atPath: restored.configPath + "/management.json")),
            as: UTF8.self)
        #expect(management.contains("\"10.0.0.11\"") && !management.contains("192.168.77.7"))
        // B11: the manager registration is the restored device's.
        #expect(try restored.registration() == ("rampart-manager", originalDeviceId))
        #expect(swap.summary.deviceId == originalDeviceId && swap.summary.managerId == "rampart-manager")
        // No transaction folder is left behind.
        #expect(!FileManager.default.fileExists(atPath: replacement.path + "/" + ConfigSwap.transactionName))
    }

    @Test(
        "R10: restore removes every VPN certificate, including ones added after the backup, and all VPN configuration")
    func removesVPN() async throws {
        let (backup, replacement, _, original) = try await Self.prepared()
        defer { Self.cleanup(original, replacement.path) }
        #expect(backup.listing.files.contains { $0.path == "vpn/certs/branch-east.crt" })
        var swap = try ConfigSwap.prepare(folder: replacement, backup: backup)
        try swap.swap()
        try swap.commit()
        #expect(!FileManager.default.fileExists(atPath: replacement.configPath + "/vpn"))
        #expect(tree(replacement.configPath).keys.allSatisfy { !$0.hasPrefix("vpn") })
        // Named for the checklist (R13): the backup's and the one added after it.
        #expect(
            swap.summary.removedVPNCertificates == ["added-after-backup", "branch-east", "branch-west", "partner-gw"])
        #expect(swap.summary.skippedVPNFiles == 5)
    }

    @Test("R11: private keys are re-encrypted under a newly generated random device key, and decrypt under it")
    func reencryptsKeys() async throws {
        let (backup, replacement, archive, original) = try await Self.prepared()
        let contents = try BackupArchive.read(archive)
        defer { Self.cleanup(original, replacement.path) }
        let oldKey = try #require(FileManager.default.contents(atPath: replacement.keyPath))
        let originalKey = try #require(FileManager.default.contents(atPath: original + "/device.key"))
        var swap = try ConfigSwap.prepare(folder: replacement, backup: backup)
        try swap.swap()
        try swap.commit()
        let newKey = try #require(FileManager.default.contents(atPath: replacement.keyPath))
        #expect(newKey.count == 32 && newKey != oldKey && newKey != originalKey)
        let mode = try FileManager.default.attributesOfItem(atPath: replacement.keyPath)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        let files = tree(replacement.configPath)
        #expect(files.keys.filter { $0.hasSuffix(".key") }.isEmpty, "no private key may be stored in clear")
        #expect(
            swap.summary.reencryptedKeys == [
                "pki/device-identity.key.enc", "pki/https-server.key.enc", "pki/syslog-tls.key.enc",
            ])
        for stored in swap.summary.reencryptedKeys {
            let sealed = try #require(files[stored])
            let clear = try AES.GCM.open(
                try AES.GCM.SealedBox(combined: sealed), using: SymmetricKey(data: newKey),
                authenticating: Data(("rampart-key-v1:" + stored).utf8))
            #expect(clear == contents[String(stored.dropLast(4))], "\(stored) does not hold the backup's key")
            // Not under the replacement's old key.
            #expect(throws: (any Error).self) {
                try AES.GCM.open(
                    try AES.GCM.SealedBox(combined: sealed), using: SymmetricKey(data: oldKey),
                    authenticating: Data(("rampart-key-v1:" + stored).utf8))
            }
        }
        // The device can export what it restored: the keys decrypt with its new device.key.
        let restored = try DeviceFolder.open(replacement.path)
        #expect(try restored.exportFiles().filter { $0.path.hasSuffix(".key") }.count == 3)
    }

    @Test("R9–R11 all-or-nothing: a failure after staging leaves the device folder byte-identical")
    func failureAfterStaging() async throws {
        let (backup, replacement, _, original) = try await Self.prepared()
        defer { Self.cleanup(original, replacement.path) }
        let before = snapshot(replacement.path)
        let hooks = ConfigSwap.Hooks(afterStaging: { throw AgentError("disk full (simulated)") })
        let error = #expect(throws: RestoreError.self) {
            try ConfigSwap.prepare(folder: replacement, backup: backup, hooks: hooks)
        }
        #expect(error?.kind == .apply && error?.message.contains("disk full") == true)
        #expect(snapshot(replacement.path) == before)
    }

    @Test(
        "R9–R11 all-or-nothing: a failure while swapping puts back what was swapped, byte for byte",
        arguments: ["config", "device.key", "facts.json"])
    func failureDuringSwap(item: String) async throws {
        let (backup, replacement, _, original) = try await Self.prepared()
        defer { Self.cleanup(original, replacement.path) }
        let before = snapshot(replacement.path)
        var swap = try ConfigSwap.prepare(
            folder: replacement, backup: backup,
            hooks: .init(beforeSwapping: { swapping in
                if swapping == item { throw AgentError("rename failed (simulated) at \(swapping)") }
            }))
        let error = #expect(throws: RestoreError.self) { try swap.swap() }
        #expect(error?.kind == .apply && error?.message.contains("left as it was") == true)
        #expect(swap.state == .abandoned)
        #expect(snapshot(replacement.path) == before)
    }

    @Test("R9–R11 all-or-nothing: a swap rolled back before commit (lease lost) leaves the folder byte-identical")
    func rollBack() async throws {
        let (backup, replacement, _, original) = try await Self.prepared()
        defer { Self.cleanup(original, replacement.path) }
        let before = snapshot(replacement.path)
        var swap = try ConfigSwap.prepare(folder: replacement, backup: backup)
        try swap.swap()
        #expect(snapshot(replacement.path) != before)
        try swap.rollBack()
        #expect(snapshot(replacement.path) == before)
    }

    @Test(
        "R9–R11 all-or-nothing: recovery after a crash rolls back an uncommitted swap and removes a bare staging folder"
    )
    func recovery() async throws {
        let (backup, replacement, _, original) = try await Self.prepared()
        defer { Self.cleanup(original, replacement.path) }
        let before = snapshot(replacement.path)
        // Crash after staging: the staging folder is removed, nothing else changes.
        _ = try ConfigSwap.prepare(folder: replacement, backup: backup)
        #expect(try ConfigSwap.recover(directory: replacement.path) == .removedStaging)
        #expect(snapshot(replacement.path) == before)
        // Crash after the swap, before the commit: rolled back.
        var swap = try ConfigSwap.prepare(folder: replacement, backup: backup)
        try swap.swap()
        #expect(try ConfigSwap.recover(directory: replacement.path) == .rolledBack)
        #expect(snapshot(replacement.path) == before)
        // Nothing to do.
        #expect(try ConfigSwap.recover(directory: replacement.path) == nil)
    }

    @Test(
        "R9–R11 all-or-nothing: an archive changed on disk after it was verified is refused while staging; the device folder is byte-identical"
    )
    func archiveChangedAfterVerification() async throws {
        let (archive, original) = try await makeBackup()
        let replacement = try makeReplacement()
        defer { Self.cleanup(original, replacement.path) }
        let path = replacement.backupsPath + "/fw-edge-01_20250131T120000Z.tar"
        try placeBackup(archive, in: replacement)
        let backup = try RestorePreflight.verify(
            try ArchiveFile(path: path), fileName: "fw-edge-01_20250131T120000Z.tar", device: replacement.facts)
        #expect(backup.archiveSHA256 == sha256Hex(archive) && backup.byteCount == archive.count)
        let before = snapshot(replacement.path)
        // The archive is staged from the file that was verified: a byte of running-config changed in place
        // (same size) since then is caught while staging, and so is any byte after the last member.
        let members = try TarReader(data: archive).members()
        let offsetOfRunningConfig = try #require(Self.contentsOffset(of: "running-config", in: members))
        for (offset, named) in [(offsetOfRunningConfig, "running-config"), (archive.count - 1, "changed after it was verified")] {
            let handle = try #require(FileHandle(forUpdatingAtPath: path))
            try handle.seek(toOffset: UInt64(offset))
            let byte = try #require(try handle.read(upToCount: 1)).first ?? 0
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: Data([byte ^ 0x20]))
            try handle.close()
            let error = #expect(throws: RestoreError.self) { try ConfigSwap.prepare(folder: replacement, backup: backup) }
            #expect(error?.kind == .apply && error?.message.contains(named) == true, "\(String(describing: error))")
            #expect(error?.message.contains("nothing was written") == true)
            var restoredFile = snapshot(replacement.path)
            restoredFile["backups/fw-edge-01_20250131T120000Z.tar"] = before["backups/fw-edge-01_20250131T120000Z.tar"]
            #expect(restoredFile == before)
            try placeBackup(archive, in: replacement)
        }
    }

    /// Where the contents of member `path` start in an archive written by `TarWriter` (one header per member).
    static func contentsOffset(of path: String, in members: [TarMember]) -> Int? {
        var offset = 0
        for member in members {
            offset += 512
            if member.path == path { return offset }
            offset += (member.contents.count + 511) / 512 * 512
        }
        return nil
    }

    @Test("R9–R11: a second restore is refused while a transaction folder exists; the device is untouched")
    func busy() async throws {
        let (backup, replacement, _, original) = try await Self.prepared()
        defer { Self.cleanup(original, replacement.path) }
        _ = try ConfigSwap.prepare(folder: replacement, backup: backup)
        let before = snapshot(replacement.path)
        let error = #expect(throws: RestoreError.self) { try ConfigSwap.prepare(folder: replacement, backup: backup) }
        #expect(error?.kind == .busy)
        #expect(snapshot(replacement.path) == before)
    }
}
