import DeviceAgentCore
import Foundation
import RampartArchive
import Synchronization
import Testing

/// Archives a restore must refuse before it asks for a lease (docs/rules.md#archives, R8).
enum HostileArchive: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case dotDot, absolute, escapingSymlink, hardLink, characterDevice, blockDevice, fifo
    case wrongMemberHash, memberNotInManifest, memberMissing, notFirstManifest, notATar, clusterBundle

    var testDescription: String { rawValue }

    /// The code RampartArchive refuses it with (nil: refused before it is read as a tar, as a bundle).
    var code: ArchiveError.Code? {
        switch self {
        case .dotDot, .absolute: .unsafePath
        case .escapingSymlink, .hardLink: .link
        case .characterDevice, .blockDevice, .fifo: .specialFile
        case .wrongMemberHash: .hashMismatch
        case .memberNotInManifest: .unexpectedMember
        case .memberMissing: .missingMember
        case .notFirstManifest: .manifest
        case .notATar: .truncated
        case .clusterBundle: nil
        }
    }

    /// What the refusal names.
    var named: String {
        switch self {
        case .dotDot: "../../outside/evil"
        case .absolute: "/etc/cron.d/evil"
        case .escapingSymlink: "pki/escape"
        case .hardLink: "pki/shadow"
        case .characterDevice: "dev/console"
        case .blockDevice: "dev/sda"
        case .fifo: "pki/pipe"
        case .wrongMemberHash: "running-config"
        case .memberNotInManifest: "extra.json"
        case .memberMissing: "running-config"
        case .notFirstManifest: "running-config"
        case .notATar: "truncated"
        case .clusterBundle: "rampart backups extract"
        }
    }

    /// The hostile archive, crafted from a genuine backup.
    func craft(from archive: Data) throws -> Data {
        let (manifest, members) = try parts(of: archive)
        let manifestMember = TarMember.file("manifest.json", manifest, mode: 0o600)
        func with(_ extra: TarMember) throws -> Data { try TarWriter.archive([manifestMember] + members + [extra]) }
        switch self {
        case .dotDot:
            return try with(.file("../../outside/evil", Data("pwned\n".utf8)))
        case .absolute:
            return try with(.file("/etc/cron.d/evil", Data("* * * * * root sh\n".utf8)))
        case .escapingSymlink:
            return try with(TarMember(path: "pki/escape", kind: .symbolicLink, linkTarget: "../../../../etc/passwd"))
        case .hardLink:
            return try with(TarMember(path: "pki/shadow", kind: .hardLink, linkTarget: "/etc/shadow"))
        case .characterDevice:
            return try with(TarMember(path: "dev/console", kind: .characterDevice))
        case .blockDevice:
            return try with(TarMember(path: "dev/sda", kind: .blockDevice))
        case .fifo:
            return try with(TarMember(path: "pki/pipe", kind: .fifo))
        case .wrongMemberHash:
            // Same size, one byte changed: only the SHA-256 tells.
            let altered = members.map { member -> TarMember in
                guard member.path == "running-config" else { return member }
                var contents = member.contents
                contents[contents.startIndex] ^= 0x20
                return .file(member.path, contents, mode: member.mode, mtime: member.mtime)
            }
            return try TarWriter.archive([manifestMember] + altered)
        case .memberNotInManifest:
            return try with(.file("extra.json", Data("{}\n".utf8)))
        case .memberMissing:
            return try TarWriter.archive([manifestMember] + members.filter { $0.path != "running-config" })
        case .notFirstManifest:
            let running = members.filter { $0.path == "running-config" }
            return try TarWriter.archive(running + [manifestMember] + members.filter { $0.path != "running-config" })
        case .notATar:
            return archive.prefix(700)
        case .clusterBundle:
            return try ClusterBundle.build(members: [
                (fileName: "fw-edge-01_control_20250131T120000Z.tar", data: archive),
                (fileName: "fw-edge-02_data_20250131T120000Z.tar", data: archive),
            ])
        }
    }

    var fileName: String {
        self == .clusterBundle ? "cl-dc2.20250131T120000Z.tar.gz" : "hostile-\(rawValue)_20250131T120000Z.tar"
    }
}

@Suite("Archives, R8: refusals before a restore: nothing outside the configuration folder, hashes, bundles")
struct RestoreArchiveTests {
    @Test("Archives: RampartArchive refuses each hostile archive, naming the member", arguments: HostileArchive.allCases)
    func refused(_ hostile: HostileArchive) async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let replacement = try makeReplacement()
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        let crafted = try hostile.craft(from: archive)
        let error = #expect(throws: RestoreError.self) {
            try RestorePreflight.verify(crafted, fileName: hostile.fileName, device: replacement.facts)
        }
        if let code = hostile.code {
            #expect(error?.kind == .archive(code), "\(String(describing: error))")
        } else {
            #expect(error?.kind == .clusterBundle)
        }
        #expect(error?.message.contains(hostile.named) == true, "\(error?.message ?? "")")
    }

    @Test(
        "Archives, R1: a hostile archive in the local backup folder is refused before any lease; the device folder is byte-identical",
        arguments: HostileArchive.allCases)
    func refusedBeforeLease(_ hostile: HostileArchive) async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let replacement = try makeReplacement()
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        try placeBackup(try hostile.craft(from: archive), in: replacement, as: hostile.fileName)
        let before = snapshot(replacement.path)
        let coordinator = FakeCoordinator()
        let console = CapturingConsole()
        let booted = BootRecorder()
        let outcome = await session(replacement, coordinator: coordinator, console: console).run(
            .local(fileName: hostile.fileName), boot: fakeBoot(booted))
        guard case .notRestored = outcome else {
            Issue.record("restored a hostile archive: \(console.text)")
            return
        }
        #expect(coordinator.calls.isEmpty, "a lease was asked for: \(coordinator.methods)")
        #expect(snapshot(replacement.path) == before)
        #expect(console.text.contains("error: ") && console.text.contains(hostile.named), "\(console.text)")
        // Nothing escaped the folder either.
        #expect(!FileManager.default.fileExists(atPath: replacement.path + "/../outside/evil"))
    }

    @Test("R8: a cluster bundle points to 'rampart backups extract BUNDLE --node NAME' and lists its nodes")
    func clusterBundleMessage() async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let bundle = try HostileArchive.clusterBundle.craft(from: archive)
        let error = #expect(throws: RestoreError.self) {
            try RestorePreflight.refuseClusterBundle(bundle, fileName: "cl-dc2.20250131T120000Z.tar.gz")
        }
        let message = error?.message ?? ""
        #expect(message.contains("rampart backups extract cl-dc2.20250131T120000Z.tar.gz --node NAME"))
        #expect(message.contains("fw-edge-01 (control)") && message.contains("fw-edge-02 (data)"))
        // Named .tar but gzip inside: refused all the same.
        #expect(throws: RestoreError.self) { try RestorePreflight.refuseClusterBundle(bundle, fileName: "renamed.tar") }
        // A genuine device backup passes this check.
        try RestorePreflight.refuseClusterBundle(archive, fileName: "fw-edge-01_20250131T120000Z.tar")
    }

    @Test("B11, B12: a backup without a manager registration, or with encrypted keys, is refused")
    func unusableContents() async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let replacement = try makeReplacement()
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        let contents = try BackupArchive.read(archive)
        // Encrypted keys (an export that did not decrypt them, B12).
        var files = contents.files
        files.append(.init(path: "pki/extra.key.enc", contents: Data(repeating: 7, count: 60)))
        let encrypted = try BackupArchive.build(manifest: contents.manifest, files: files).archive
        let first = #expect(throws: RestoreError.self) {
            try RestorePreflight.verify(encrypted, fileName: "a.tar", device: replacement.facts)
        }
        #expect(first?.kind == .backupContents && first?.message.contains("pki/extra.key.enc") == true)
        // An unregistered device's backup: it could not reconnect (B11).
        files = contents.files.map {
            $0.path == "manager-registration.json"
                ? .init(path: $0.path, contents: Data("{\"manager_id\": \"\", \"device_id\": \"\"}\n".utf8)) : $0
        }
        let unregistered = try BackupArchive.build(manifest: contents.manifest, files: files).archive
        let second = #expect(throws: RestoreError.self) {
            try RestorePreflight.verify(unregistered, fileName: "b.tar", device: replacement.facts)
        }
        #expect(second?.kind == .backupContents && second?.message.contains("manager-registration.json") == true)
        // A registration that names another device than the manifest.
        files = contents.files.map {
            $0.path == "manager-registration.json"
                ? .init(
                    path: $0.path,
                    contents: Data("{\"manager_id\": \"rampart-manager\", \"device_id\": \"someone-else\"}\n".utf8))
                : $0
        }
        let inconsistent = try BackupArchive.build(manifest: contents.manifest, files: files).archive
        let third = #expect(throws: RestoreError.self) {
            try RestorePreflight.verify(inconsistent, fileName: "c.tar", device: replacement.facts)
        }
        #expect(third?.kind == .backupContents && third?.message.contains("someone-else") == true)
    }

    @Test("R11: a backup with a private key over 1 MiB is refused before the lease (keys are re-encrypted whole)")
    func oversizePrivateKey() async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let replacement = try makeReplacement()
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        let contents = try BackupArchive.read(archive)
        var files = contents.files
        files.append(.init(path: "pki/huge.key", contents: Data(count: RestorePreflight.maxPrivateKeySize + 1)))
        let oversize = try BackupArchive.build(manifest: contents.manifest, files: files).archive
        let error = #expect(throws: RestoreError.self) {
            try RestorePreflight.verify(oversize, fileName: "d.tar", device: replacement.facts)
        }
        #expect(error?.kind == .backupContents && error?.message.contains("pki/huge.key") == true)
        // At the limit, it is restored like any key.
        files[files.count - 1] = .init(path: "pki/huge.key", contents: Data(count: RestorePreflight.maxPrivateKeySize))
        let atLimit = try BackupArchive.build(manifest: contents.manifest, files: files).archive
        _ = try RestorePreflight.verify(atLimit, fileName: "e.tar", device: replacement.facts)
    }
}
