import DeviceAgentCore
import Foundation
import RampartArchive
import Synchronization
import Testing

/// A way the replacement can differ from the backup's device (R3, R4).
struct FactDifference: Sendable, CustomTestStringConvertible {
    var testDescription: String
    var adjust: @Sendable (inout DeviceProfile) -> Void
    /// Words the refusal must hold (what differs, both values).
    var expected: [String]
    /// Lines of differences (a changed interface type is two: one gone, one new).
    var lines = 1
}

@Suite("R3, R4 the replacement must match the backup's device: model, modules, interfaces, version, patch")
struct RestoreFactsTests {
    static let differences: [FactDifference] = [
        .init(
            testDescription: "R3 model", adjust: { $0.model = "FPR-3110" }, expected: ["model", "FPR-3110", "FPR-3120"]),
        .init(
            testDescription: "R3 network modules", adjust: { $0.networkModules = 0 },
            expected: ["network modules", "has 0", "had 1"]),
        .init(
            testDescription: "R3 interface count",
            adjust: { $0.interfaces = [.init(type: "1GbE-RJ45", count: 8), .init(type: "10GbE-SFP+", count: 2)] },
            expected: ["interfaces", "has 2 10GbE-SFP+", "had 4"]),
        .init(
            testDescription: "R3 interface type",
            adjust: { $0.interfaces = [.init(type: "1GbE-RJ45", count: 8), .init(type: "25GbE-SFP28", count: 4)] },
            expected: ["interfaces", "25GbE-SFP28", "10GbE-SFP+", "none"], lines: 2),
        .init(
            testDescription: "R4 version", adjust: { $0.software = "7.6.0" },
            expected: ["software version", "7.6.0", "7.4.1"]),
        .init(
            testDescription: "R4 patch", adjust: { $0.patch = 1 },
            expected: ["patch", "7.4.1 patch 1", "7.4.1 patch 2"]),
    ]

    @Test("R3, R4: each difference is refused, naming what differs and both values", arguments: differences)
    func refused(_ difference: FactDifference) async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let replacement = try makeReplacement(adjust: difference.adjust)
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        let error = #expect(throws: RestoreError.self) {
            try RestorePreflight.verify(archive, fileName: "fw-edge-01_20250131T120000Z.tar", device: replacement.facts)
        }
        guard case .mismatch(let lines)? = error?.kind else {
            Issue.record("expected a mismatch, got \(String(describing: error))")
            return
        }
        #expect(lines.count == difference.lines, "\(lines)")
        for word in difference.expected {
            #expect(lines.joined().contains(word), "'\(word)' missing from \(lines)")
        }
    }

    @Test("R3, R4: a difference refuses the restore before any lease, and writes nothing", arguments: differences)
    func refusedBeforeLease(_ difference: FactDifference) async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let replacement = try makeReplacement(adjust: difference.adjust)
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        try placeBackup(archive, in: replacement)
        let before = snapshot(replacement.path)
        let coordinator = FakeCoordinator()
        let console = CapturingConsole()
        let outcome = await session(replacement, coordinator: coordinator, console: console).run(
            .local(fileName: "fw-edge-01_20250131T120000Z.tar"), boot: fakeBoot(BootRecorder()))
        guard case .notRestored(let error) = outcome, case .mismatch = error.kind else {
            Issue.record("not refused as a mismatch: \(console.text)")
            return
        }
        #expect(coordinator.calls.isEmpty)
        #expect(snapshot(replacement.path) == before)
        #expect(console.text.contains("does not match the backup") && console.text.contains("nothing was written"))
    }

    @Test("R3, R4: every difference is listed at once; matching facts (interfaces in any grouping) pass")
    func allDifferencesAndMatches() throws {
        let manifest = BackupManifest(
            deviceId: "d", deviceName: "fw", serial: "S1", managerId: "m", model: "FPR-3120", platform: "physical",
            networkModules: 1, interfaces: [.init(type: "1GbE-RJ45", count: 8), .init(type: "10GbE-SFP+", count: 4)],
            software: .init(version: "7.4.1", patch: 2), role: .standalone, managementIp: "10.0.0.1",
            createdAt: "2025-01-31T12:00:00Z")
        var facts = sampleFacts()
        #expect(RestorePreflight.differences(device: facts, backup: manifest).isEmpty)
        // The same interfaces split over two groups of a type still match.
        facts.interfaces = [
            .init(type: "10GbE-SFP+", count: 4), .init(type: "1GbE-RJ45", count: 6), .init(type: "1GbE-RJ45", count: 2),
        ]
        #expect(RestorePreflight.differences(device: facts, backup: manifest).isEmpty)
        facts.model = "FPR-1150"
        facts.networkModules = 2
        facts.software = "7.2.0"
        let lines = RestorePreflight.differences(device: facts, backup: manifest)
        #expect(lines.count == 3)
        #expect(
            lines[0].hasPrefix("model") && lines[1].hasPrefix("network modules")
                && lines[2].hasPrefix("software version"))
    }

    @Test("R3, R4: the lease request carries this device's facts, interfaces added up by type")
    func leaseFacts() {
        var facts = sampleFacts()
        facts.interfaces = [
            .init(type: "1GbE-RJ45", count: 6), .init(type: "1GbE-RJ45", count: 2), .init(type: "10GbE-SFP+", count: 4),
        ]
        let proto = RestoreSession.leaseFacts(facts)
        #expect(proto.serial == facts.serial && proto.model == "FPR-3120" && proto.platform == "physical")
        #expect(proto.software.version == "7.4.1" && proto.software.patch == 2 && proto.networkModules == 1)
        #expect(proto.interfaces == ["1GbE-RJ45": 8, "10GbE-SFP+": 4])
    }
}
