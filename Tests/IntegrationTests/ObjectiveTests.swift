import Foundation
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// Backup objectives over real processes (docs/rules.md P16, docs/backups.md "Backup objectives").
@Suite("P16: backup objectives, stale and fresh, over real processes", .serialized)
struct ObjectiveTests {
    /// `rampart events tail --since 0 --topic TOPIC --count 100 --output json`: the events of `topic` so far.
    static func events(_ system: BackupSystem, _ topic: String) async throws -> [Rampart_Bus_V1_Event] {
        let result = try await system.system.rampart("events", "tail", "--since", "0", "--topic", topic, "--count", "100", "--output", "json")
        #expect(result.exitCode == 0, "\(result)")
        return try result.stdout.split(separator: "\n").map { try OperatorJSON.decode(Rampart_Bus_V1_Event.self, from: String($0)) }
    }

    static func status(_ system: BackupSystem) async throws -> (Rampart_Backup_V1_ListDeviceStatusResponse, Int32) {
        let result = try await system.system.rampart("backups", "status", "--output", "json")
        return (try OperatorJSON.decode(Rampart_Backup_V1_ListDeviceStatusResponse.self, from: result.stdout), result.exitCode)
    }

    @Test(
        "P16: a device backed up, its objective set to seconds: backup.device.stale exactly once with two workers checking, backups status exits 12, devices list shows stale; a new backup: backup.device.fresh; back to the default objective: exit 0",
        .timeLimit(.minutes(5)))
    func staleThenFresh() async throws {
        var spec = FleetSpec()
        spec.device("fw-obj")
        spec.device("fw-kvm", platform: "virtual", hypervisor: "kvm")
        try await withBackupSystem(spec, workers: 2) { system in
            let cli = system.system
            let (first, firstCode) = try await system.backUp("fw-obj")
            #expect(firstCode == 0, "\(first)")
            let backup = try #require(try await system.backups(job: first.id).first)

            let (fresh, freshCode) = try await Self.status(system)
            #expect(freshCode == 0, "\(fresh)")
            let obj = try #require(fresh.devices.first { $0.deviceName == "fw-obj" })
            #expect(obj.state == .ok && obj.lastBackupID == backup.id && obj.objectiveSeconds == 8 * 86_400 && !obj.objectiveOverridden)
            let kvm = try #require(fresh.devices.first { $0.deviceName == "fw-kvm" })
            #expect(kvm.state == .unsupported && kvm.reason.contains("KVM"), "B2's reason is in the JSON: \(kvm)")
            #expect(fresh.defaultObjectiveSeconds == 8 * 86_400)

            let set = try await cli.rampart("devices", "objective", "fw-obj", "10s")
            #expect(set.exitCode == 0 && set.stdout.contains("10s (own)"), "\(set)")
            let bad = try await cli.rampart("devices", "objective", "fw-obj", "10 years")
            #expect(bad.exitCode == 64, "\(bad)")
            let unknown = try await cli.rampart("devices", "objective", "fw-nosuch", "1h")
            #expect(unknown.exitCode == 3, "\(unknown)")

            // The periodic check (every second, in each of the two workers) says it once.
            let stale = try await cli.rampart(
                "events", "tail", "--since", "0", "--topic", "backup.device.stale", "--count", "1", "--follow", "--timeout", "60",
                "--output", "json")
            #expect(stale.exitCode == 0 && stale.stdout.contains("\"device\":\"fw-obj\""), "\(stale)")
            let (staleStatus, staleCode) = try await Self.status(system)
            #expect(staleCode == 12 && staleStatus.stale == 1, "\(staleStatus)")
            #expect(staleStatus.devices.first { $0.deviceName == "fw-obj" }?.state == .stale)
            let table = try await cli.rampart("backups", "status")
            #expect(table.exitCode == 12 && table.stdout.contains("fw-obj") && table.stdout.contains("1 stale"), "\(table)")
            let listed = try await cli.rampart("devices", "list")
            let line = listed.stdout.split(separator: "\n").first { $0.hasPrefix("fw-obj ") } ?? ""
            #expect(listed.exitCode == 0 && line.contains(" stale ") && line.contains("ago"), "\(listed)")
            let kvmLine = listed.stdout.split(separator: "\n").first { $0.hasPrefix("fw-kvm ") } ?? ""
            #expect(kvmLine.contains(" unsupported "), "\(listed)")

            // Two workers go on checking every second while it stays stale: nothing more is said. (A wait for
            // time to pass, not for a condition: what is proved is that nothing happens.)
            try await Task.sleep(for: .seconds(3))
            #expect(try await Self.events(system, "backup.device.stale").count == 1)

            // A new good backup: fresh at once, in the record's own transaction. Its objective is still 10 s, so on a
            // slow machine it may go stale again before the next look: only what came before the fresh event counts.
            let (second, secondCode) = try await system.backUp("fw-obj")
            #expect(secondCode == 0, "\(second)")
            let firstFresh = try #require(try await Self.events(system, "backup.device.fresh").first)
            #expect(firstFresh.attributes["caller"] == "backup-stored" && firstFresh.attributes["device"] == "fw-obj", "\(firstFresh)")
            let secondBackup = try #require(try await system.backups(job: second.id).first)
            #expect(firstFresh.attributes["last_backup_id"] == secondBackup.id, "\(firstFresh)")
            let staleBefore = try await Self.events(system, "backup.device.stale").filter { $0.seq < firstFresh.seq }
            #expect(staleBefore.count == 1, "\(staleBefore)")

            // Back to the default objective (8 days): within it, whatever time has passed since; status exits 0.
            let cleared = try await cli.rampart("devices", "objective", "fw-obj", "--clear")
            #expect(cleared.exitCode == 0 && cleared.stdout.contains("(default)") && cleared.stdout.contains(", ok"), "\(cleared)")
            let (after, afterCode) = try await Self.status(system)
            #expect(afterCode == 0 && after.stale == 0, "\(after)")
        }
    }
}
