import Foundation
import RampartAPI
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// Restore drills over real processes (docs/drills.md, docs/rules.md P18): the backup worker runs each drill
/// in a `device-agent drill` child process, asks the restore coordinator's CheckRestore, and records the result.
@Suite("P18: restore drills over real processes", .serialized)
struct DrillTests {
    static func events(_ system: BackupSystem, _ topic: String) async throws -> [Rampart_Bus_V1_Event] {
        let result = try await system.system.rampart(
            "events", "tail", "--since", "0", "--topic", topic, "--count", "200", "--output", "json")
        #expect(result.exitCode == 0, "\(result)")
        return try result.stdout.split(separator: "\n").map { try OperatorJSON.decode(Rampart_Bus_V1_Event.self, from: String($0)) }
    }

    static func drill(_ system: BackupSystem, _ targets: String...) async throws -> (Rampart_Backup_V1_Job, Int32) {
        let result = try await system.system.rampart(["drill"] + targets + ["--output", "json", "--timeout", "120"])
        guard let job = try? OperatorJSON.decode(Rampart_Backup_V1_Job.self, from: result.stdout) else {
            throw RunningSystem.TimeoutError(description: "no job from rampart drill: \(result)")
        }
        return (job, result.exitCode)
    }

    /// The drill scratch folders in the temporary folders a worker may use (its TMPDIR, or /tmp).
    static func scratchFolders() -> Set<String> {
        var found = Set<String>()
        for root in Set([NSTemporaryDirectory(), "/tmp/"]) {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where name.hasPrefix("rampart-drill-") {
                found.insert(root + name)
            }
        }
        return found
    }

    @Test(
        "P18, R10, R11: drills of a standalone device, an HA pair and a 3-node cluster restore each device's latest good backup onto a throwaway replacement: every check passes, no restore lease is taken, backups list and devices list show it; a backup tampered with in storage fails its drill and is no longer the device's last good backup",
        .timeLimit(.minutes(6)))
    func drills() async throws {
        var spec = FleetSpec()
        spec.device("fw-drill")
        spec.pair("ha-drill")
        spec.cluster("cl-drill")
        try await withBackupSystem(spec) { system in
            let cli = system.system
            try cli.start("restore-coordinator", ["--lease-seconds", "30"])
            try await cli.waitUntilServing(RestoreAPI.serviceName)
            let (backup, backupCode) = try await system.backUp("fw-drill", "pair:ha-drill", "cluster:cl-drill")
            #expect(backupCode == 0, "\(backup)")
            let stored = try await system.backups(job: backup.id)
            let standalone = try #require(stored.first { $0.ownerName == "fw-drill" })

            let scratchBefore = Self.scratchFolders()
            let (job, code) = try await Self.drill(system, "fw-drill", "pair:ha-drill", "cluster:cl-drill")
            // The scratch folder held decrypted keys: it is gone once the task ended.
            #expect(Self.scratchFolders().subtracting(scratchBefore).isEmpty)
            #expect(code == 0 && job.drill && job.state == .succeeded, "\(job)")
            let drills = job.tasks.flatMap(\.drills)
            #expect(
                Set(drills.map(\.deviceName))
                    == ["fw-drill", "ha-drill-a", "ha-drill-b", "cl-drill-n1", "cl-drill-n2", "cl-drill-n3"], "\(job)")
            for drill in drills {
                let checks = Dictionary(uniqueKeysWithValues: drill.checks.map { ($0.name, $0) })
                #expect(drill.passed && drill.reason.isEmpty, "\(drill)")
                for name in ["storage", "replacement", "archive hashes", "restore", "tree", "R10", "R11",
                             "pre-restore: own appliance", "pre-restore: manager", "pre-restore: hardware",
                             "pre-restore: software", "pre-restore: role"]
                {
                    #expect(checks[name]?.passed == true, "\(drill.deviceName): \(name): \(String(describing: checks[name]))")
                }
                // The originals are connected: R12 is reported, advisory, and does not fail the drill.
                let r12 = try #require(checks["pre-restore: original disconnected"], "\(drill)")
                #expect(!r12.passed && r12.advisory, "\(r12)")
                #expect(checks["R10"]?.detail.contains("VPN certificate") == true, "\(drill)")
                #expect(checks["R11"]?.detail.contains("re-encrypted under a new device key") == true, "\(drill)")
            }
            // A cluster node's file came out of its cluster's bundle.
            #expect(drills.first { $0.deviceName == "cl-drill-n2" }?.fileName.hasSuffix(".tar") == true)

            // A cluster node (or an HA peer) may be drilled alone: its file, out of the latest bundle.
            let (node, nodeCode) = try await Self.drill(system, "cl-drill-n2")
            let nodeDrill = node.tasks.flatMap(\.drills)
            #expect(nodeCode == 0 && nodeDrill.map(\.deviceName) == ["cl-drill-n2"], "\(node)")
            #expect(nodeDrill.first?.backupID == drills.first { $0.deviceName == "cl-drill-n2" }?.backupID)

            // Nothing was asked of the restore coordinator but CheckRestore: no lease, no request.
            let leaseHistory = try await cli.rampart("restore", "history", "--output", "json")
            let leases = try OperatorJSON.decode(Rampart_Restore_V1_ListLeasesResponse.self, from: leaseHistory.stdout)
            #expect(leaseHistory.exitCode == 0 && leases.leases.isEmpty, "\(leaseHistory)")
            #expect(try await Self.events(system, "restore.").isEmpty)
            #expect(try await Self.events(system, "backup.drill.passed").count == 7, "six devices, then the node alone")

            // backups list and devices list show the results.
            let listed = try await cli.rampart("backups", "list", "--output", "json")
            let backups = try OperatorJSON.decode(Rampart_Backup_V1_ListBackupsResponse.self, from: listed.stdout).backups
            let bundle = try #require(backups.first { !$0.members.isEmpty })
            #expect(bundle.drills.count == 3 && bundle.drills.allSatisfy(\.passed), "\(bundle)")
            #expect(backups.first { $0.id == standalone.id }?.drills.first?.passed == true)
            let table = try await cli.rampart("backups", "list")
            let line = table.stdout.split(separator: "\n").first { $0.contains(standalone.fileName) } ?? ""
            #expect(line.contains("restorable, verified at 20"), "\(table)")
            let devices = try await cli.rampart("devices", "list")
            let deviceLine = devices.stdout.split(separator: "\n").first { $0.hasPrefix("fw-drill ") } ?? ""
            #expect(devices.exitCode == 0 && deviceLine.contains("restorable, verified at 20"), "\(devices)")

            // A newer backup whose object is damaged in storage: its drill fails, for that reason. (Its
            // configuration changed first: an unchanged backup would share the first one's file, P17.)
            try await system.changeConfig("fw-drill")
            let (second, secondCode) = try await system.backUp("fw-drill")
            #expect(secondCode == 0, "\(second)")
            let damaged = try #require(try await system.backups(job: second.id).first)
            let (before, _) = try await ObjectiveTests.status(system)
            #expect(before.devices.first { $0.deviceName == "fw-drill" }?.lastBackupID == damaged.id)
            try system.flipBit(of: damaged)
            let (failed, failedCode) = try await Self.drill(system, "fw-drill")
            #expect(failedCode == 8 && failed.state == .failed, "\(failed)")
            let finding = try #require(failed.tasks.first?.drills.first, "\(failed)")
            #expect(!finding.passed && finding.backupID == damaged.id, "\(finding)")
            #expect(finding.reason.hasPrefix("storage: "), "\(finding.reason)")
            let failedEvents = try await Self.events(system, "backup.drill.failed")
            #expect(failedEvents.count == 1 && failedEvents.first?.subject == damaged.id, "\(failedEvents)")
            let shown = try await cli.rampart("backups", "list", "--owner", "fw-drill")
            #expect(shown.stdout.contains("not restorable: storage"), "\(shown)")

            // It is not a good backup any more: the objective counts the one before it.
            let (after, _) = try await ObjectiveTests.status(system)
            #expect(after.devices.first { $0.deviceName == "fw-drill" }?.lastBackupID == standalone.id, "\(after)")
            // The next drill takes the latest good backup, the first one, and it still restores; the table says so.
            let again = try await cli.rampart("drill", "fw-drill", "--timeout", "120")
            #expect(again.exitCode == 0, "\(again)")
            #expect(again.stdout.contains("\(standalone.fileName): restorable, verified at 20"), "\(again)")
            let results = try await cli.rampart("drills", "list", "--device", "fw-drill", "--output", "json")
            let history = try OperatorJSON.decode(Rampart_Backup_V1_ListDrillsResponse.self, from: results.stdout).drills
            #expect(history.map(\.backupID) == [standalone.id, damaged.id, standalone.id], "\(results)")
            #expect(history.map(\.passed) == [true, false, true])
        }
    }

    @Test("P18, B4: a drill schedule's slot queues a drill job of its targets (all: every device), recorded as the schedule's", .timeLimit(.minutes(4)))
    func scheduled() async throws {
        var spec = FleetSpec()
        spec.device("fw-sched")
        try await withBackupSystem(spec) { system in
            let cli = system.system
            try cli.start("restore-coordinator", ["--lease-seconds", "30"])
            try await cli.waitUntilServing(RestoreAPI.serviceName)
            let (backup, code) = try await system.backUp("fw-sched")
            #expect(code == 0, "\(backup)")
            let created = try await cli.rampart(
                "schedules", "create", "drill-minutely", "--cron", "* * * * *", "--drill", "--target", "all", "--output", "json")
            let schedule = try OperatorJSON.decode(Rampart_Backup_V1_Schedule.self, from: created.stdout)
            #expect(created.exitCode == 0 && schedule.drill, "\(created)")
            // The next minute's slot: wait for its job's end (the scheduler looks every 200 ms).
            var job: Rampart_Backup_V1_Job?
            while job == nil {
                let listed = try await cli.rampart("jobs", "list", "--output", "json")
                let jobs = try OperatorJSON.decode(Rampart_Backup_V1_ListJobsResponse.self, from: listed.stdout).jobs
                job = jobs.first { $0.origin == "schedule:drill-minutely" && $0.state.isFinished }
                if job == nil { try await Task.sleep(for: .milliseconds(250)) }
            }
            let drilled = try #require(job)
            #expect(drilled.drill && drilled.state == .succeeded, "\(drilled)")
            #expect(drilled.tasks.first?.drills.first?.passed == true, "\(drilled)")
        }
    }
}
