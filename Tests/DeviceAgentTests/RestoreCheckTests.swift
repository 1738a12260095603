import DeviceAgentCore
import Foundation
import RampartAPI
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC
import Testing

/// A backup `restore remote-manager-backup check` must fail, and which check says so.
enum BadBackup: Sendable, CustomTestStringConvertible {
    case hostile(HostileArchive)
    case otherPatch, encryptedKey, noRegistration, missing

    static let allCases: [BadBackup] =
        HostileArchive.allCases.map(BadBackup.hostile) + [.otherPatch, .encryptedKey, .noRegistration, .missing]

    var testDescription: String {
        if case .hostile(let hostile) = self { return hostile.rawValue }
        return "\(self)"
    }

    var fileName: String {
        if case .hostile(let hostile) = self { return hostile.fileName }
        return "bad-\(testDescription)_20250131T120000Z.tar"
    }

    /// The check that fails.
    var failing: String {
        switch self {
        case .hostile: "archive"
        case .otherPatch: "this device (R3, R4)"
        case .encryptedKey, .noRegistration: "backup contents (B11, B12)"
        case .missing: "fetch"
        }
    }

    /// What its line names.
    var named: String {
        switch self {
        case .hostile(let hostile): hostile.named
        case .otherPatch: "patch: this device runs 7.4.1 patch 2, the backup was taken on 7.4.1 patch 3 (R4)"
        case .encryptedKey: "pki/extra.key.enc"
        case .noRegistration: "manager-registration.json"
        case .missing: "no backup '\(fileName)' in the local backup folder"
        }
    }

    /// Whether the archive can be read, so that the coordinator is asked too.
    var readable: Bool {
        switch self {
        case .hostile, .missing: false
        case .otherPatch, .encryptedKey, .noRegistration: true
        }
    }

    /// Places the bad backup in `replacement`'s local backup folder (nothing for `.missing`).
    func place(in replacement: DeviceFolder) async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let contents = try BackupArchive.read(archive)
        let data: Data
        switch self {
        case .hostile(let hostile):
            data = try hostile.craft(from: archive)
        case .otherPatch:
            var facts = sampleFacts(configSize: 32 * 1024)
            facts.patch = 3
            let (patched, patchedOriginal) = try await makeBackup(facts: facts)
            try? FileManager.default.removeItem(atPath: patchedOriginal)
            data = patched
        case .encryptedKey:
            data = try BackupArchive.build(
                manifest: contents.manifest,
                files: contents.files + [.init(path: "pki/extra.key.enc", contents: Data(repeating: 7, count: 60))]
            ).archive
        case .noRegistration:
            data = try BackupArchive.build(
                manifest: contents.manifest,
                files: contents.files.map {
                    $0.path == "manager-registration.json"
                        ? .init(path: $0.path, contents: Data("{\"manager_id\": \"\", \"device_id\": \"\"}\n".utf8)) : $0
                }
            ).archive
        case .missing:
            return
        }
        try placeBackup(data, in: replacement, as: fileName)
    }
}

@Suite("R2 restore remote-manager-backup check: every check of a restore, changing nothing (in-process coordinator)")
struct RestoreCheckTests {
    static let fileName = "fw-edge-01_20250131T120000Z.tar"

    static func check(
        _ replacement: DeviceFolder, _ source: BackupSource, coordinator: FakeCoordinator, console: CapturingConsole
    ) async -> RestoreSession.CheckReport {
        await session(replacement, coordinator: coordinator, console: console).check(source)
    }

    @Test(
        "R2, R3, R4, B11, B12, Archives: check fails each bad backup on the check that names it, writes nothing and asks for no lease",
        arguments: BadBackup.allCases)
    func refusesBadBackups(_ bad: BadBackup) async throws {
        let replacement = try makeReplacement()
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        try await bad.place(in: replacement)
        let before = snapshot(replacement.path)
        let coordinator = FakeCoordinator()
        let console = CapturingConsole()
        let report = await Self.check(replacement, .local(fileName: bad.fileName), coordinator: coordinator, console: console)
        #expect(!report.passed && report.failed.first == bad.failing, "\(console.text)")
        #expect(console.text.contains("check: failed \(bad.failing): ") && console.text.contains(bad.named), "\(console.text)")
        #expect(console.text.contains("check: failed: ") && console.text.contains("would be refused"), "\(console.text)")
        #expect(console.text.contains("Nothing was written and no lease was taken."))
        // The coordinator answers only what it can check from a readable archive; a lease is never asked for.
        #expect(coordinator.methods == (bad.readable ? ["CheckRestore"] : []), "\(coordinator.methods)")
        #expect(snapshot(replacement.path) == before)
        #expect(!FileManager.default.fileExists(atPath: replacement.path + "/../outside/evil"))
    }

    @Test("R1, R2: check passes a good backup: each check ok, then a summary; the request is RequestLease's; nothing written, no lease")
    func passesGoodBackup() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let (archive, replacement) = (stage.archive, stage.replacement)
        let before = snapshot(replacement.path)
        let coordinator = FakeCoordinator()
        let console = CapturingConsole()
        let report = await Self.check(replacement, .local(fileName: Self.fileName), coordinator: coordinator, console: console)
        #expect(report.passed, "\(console.text)")
        #expect(
            report.checks.map(\.name) == [
                "fetch", "archive", "backup contents (B11, B12)", "this device (R3, R4)", "coordinator: order (R1)",
            ])
        let text = console.text
        #expect(text.contains("check: ok     archive: \(Self.fileName): \(archive.count) bytes, SHA-256 \(sha256Hex(archive))"))
        #expect(text.contains("check: ok     coordinator: order (R1): no other restore of fw-edge-01 is under way"))
        #expect(text.contains("check: passed: all 5 checks passed; a restore of \(Self.fileName) would be granted"), "\(text)")
        #expect(!text.contains("warning:"), "no newer backup, no warning")
        #expect(coordinator.methods == ["CheckRestore"])
        let request = try #require(coordinator.requests.first)
        #expect(request.archiveSha256 == sha256Hex(archive) && request.archiveFileName == Self.fileName)
        #expect(request.manifestJson == (try BackupArchive.read(archive)).manifestJSON)
        #expect(request.facts.serial == "JAD9999Z007" && request.cliUser == "alice")
        #expect(snapshot(replacement.path) == before)
    }

    @Test("R2, R12: the coordinator's failed checks, its refusal and its absence are failed checks; nothing written")
    func coordinatorSays() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let replacement = stage.replacement
        let before = snapshot(replacement.path)
        let cases: [(RPCError, String)] = [
            (
                RPCError(.failedPrecondition, "device fw-edge-01 is still connected: disconnect the faulty device first (R12)"),
                "check: failed coordinator: order (R1): device fw-edge-01 is still connected"
            ),
            (
                RPCError(.permissionDenied, "device key 'fw-other' may act only for its own device"),
                "check: failed coordinator: the restore coordinator refused the check: device key 'fw-other'"
            ),
            (RPCError(.unavailable, "no instance"), "check: failed coordinator: the restore coordinator cannot be reached"),
        ]
        for (refusal, line) in cases {
            let coordinator = FakeCoordinator(refusal: refusal)
            let console = CapturingConsole()
            let report = await Self.check(
                replacement, .local(fileName: Self.fileName), coordinator: coordinator, console: console)
            #expect(!report.passed && report.failed.count == 1, "\(console.text)")
            #expect(console.text.contains(line), "\(console.text)")
            #expect(coordinator.methods == ["CheckRestore"])
        }
        #expect(snapshot(replacement.path) == before)
    }

    @Test("R2: a newer backup is a warning: check shows it, a restore prints it before its lease and goes ahead; none without")
    func newerBackupWarning() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let (archive, replacement) = (stage.archive, stage.replacement)
        var newer = Rampart_Restore_V1_NewerBackup()
        newer.backupID = "b-2"
        newer.fileName = "fw-edge-01_20250207T120000Z.tar"
        newer.createdUnixMs = 1_738_929_600_000  // 2025-02-07T12:00:00Z
        let coordinator = FakeCoordinator()
        coordinator.announceNewer(newer)
        let warning =
            "warning: newer backup exists: fw-edge-01_20250207T120000Z.tar taken 2025-02-07T12:00:00Z; \(Self.fileName) was taken "

        let checked = CapturingConsole()
        let report = await Self.check(replacement, .local(fileName: Self.fileName), coordinator: coordinator, console: checked)
        #expect(report.passed && report.newerBackup == newer, "a warning, not a failed check: \(checked.text)")
        #expect(checked.text.contains(warning), "\(checked.text)")

        let restoring = CapturingConsole()
        let outcome = await session(replacement, coordinator: coordinator, console: restoring).run(
            .local(fileName: Self.fileName), boot: fakeBoot(BootRecorder()))
        guard case .restored = outcome else {
            Issue.record("the warning stopped the restore:\n\(restoring.text)")
            return
        }
        let text = restoring.text
        let warned = try #require(text.range(of: warning), "\(text)")
        let leased = try #require(text.range(of: "restore: lease lease-1 granted"), "\(text)")
        #expect(warned.lowerBound < leased.lowerBound, "the warning comes before the lease line")

        // Without a newer backup, no warning.
        let plain = FakeCoordinator()
        let other = try makeReplacement()
        defer { try? FileManager.default.removeItem(atPath: other.path) }
        try placeBackup(archive, in: other, as: Self.fileName)
        let quiet = CapturingConsole()
        _ = await Self.check(other, .local(fileName: Self.fileName), coordinator: plain, console: quiet)
        _ = await session(other, coordinator: plain, console: quiet).run(
            .local(fileName: Self.fileName), boot: fakeBoot(BootRecorder()))
        #expect(!quiet.text.contains("warning:") && quiet.text.contains("restore: complete"), "\(quiet.text)")
    }
}
