import Foundation
import RampartAPI
import RampartBus
import RampartProto
import RampartTesting
import Testing

/// Interrupted backups are delayed, never lost (docs/faults.md): an interrupted attempt never keeps one
/// of the device's export slots, and a busy device makes the worker wait, not give up.
@Suite("Interrupted backups are delayed, not lost (real processes)", .serialized)
struct InterruptionTests {
    /// Starts a backup of `device` and waits until its task is reading the device's export.
    static func startAndWaitForExport(_ system: BackupSystem, _ client: BusClient, _ device: String) async throws
        -> (job: String, task: String)
    {
        var request = Rampart_Backup_V1_StartBackupRequest()
        var target = Rampart_Backup_V1_Target()
        target.ref = device
        request.targets = [target]
        let started: Rampart_Backup_V1_JobResponse = try await client.call(
            BackupAPI.startBackup, request)
        let task: String = try await eventually(
            "the task of job \(started.job.id) reads its export", timeout: .seconds(60), every: .milliseconds(50)
        ) { () -> (String?, String) in
            let job = try await getJob(client, started.job.id)
            guard let task = job.tasks.first, task.state == .taskRunning, task.progressPercent > 0 else { return (nil, "\(job)") }
            return (task.id, "\(job)")
        }
        return (started.job.id, task)
    }

    /// Waits until job `id` has ended (in any state); returns it.
    static func ended(_ client: BusClient, _ id: String, timeout: Duration = .seconds(120)) async throws
        -> Rampart_Backup_V1_Job
    {
        try await eventually("job \(id) ends", timeout: timeout) { () -> (Rampart_Backup_V1_Job?, String) in
            let job = try await getJob(client, id)
            return (job.state.isFinished ? job : nil, "\(job)")
        }
    }

    /// A backup of `device` cancelled (`rampart jobs cancel`) while its export is read; returns when the
    /// job has ended, with the time the cancel was sent.
    static func cancelMidExport(_ system: BackupSystem, _ client: BusClient, _ device: String) async throws -> Date {
        let (job, _) = try await startAndWaitForExport(system, client, device)
        let cancelledAt = Date()
        let cancelled = try await system.system.rampart("jobs", "cancel", job)
        #expect(cancelled.exitCode == 0, "\(cancelled)")
        _ = try await ended(client, job, timeout: .seconds(60))
        return cancelledAt
    }

    /// A backup of `device` whose worker (one of two, "worker-1" and "worker-2") is killed (`kill -9`) while it
    /// reads the export; a new worker process takes the dead one's place at once (same instance id, as a
    /// supervisor would). Returns the job (not waited for) and the time of the kill.
    static func killHolderMidExport(
        _ system: inout BackupSystem, _ client: BusClient, _ device: String, leaseSeconds: Int
    ) async throws -> (job: String, killedAt: Date) {
        let (job, task) = try await startAndWaitForExport(system, client, device)
        let owner = try #require(try await leaseOwner(system, task), "the task backing up \(device) has no lease owner")
        let index = owner == "worker-1" ? 0 : 1
        let killedAt = Date()
        system.workers[index].kill9()
        system.workers[index] = try system.system.start(
            "backup-worker",
            ["--instance-id", owner, "--lease-seconds", "\(leaseSeconds)", "--retry-base-seconds", "0",
             "--schedule-interval-ms", "200"])
        return (job, killedAt)
    }

    @Test("Five backups cancelled mid-export in a row, then a backup with --wait: it succeeds (the device held 4 exports at most)")
    func cancelledAttemptsReleaseTheirExports() async throws {
        var spec = FleetSpec()
        // 16 one-MiB chunks, 400 ms each: the cancel (a CLI process) lands mid-export even on a busy machine.
        spec.configSize = "16MiB"
        spec.device("fw-x", slowExportMs: 400)
        try await withBackupSystem(spec) { system in
            let client = system.system.client()
            defer { client.close() }
            var lastCancel = Date()
            for _ in 0..<5 { lastCancel = try await Self.cancelMidExport(system, client, "fw-x") }
            let (finished, code) = try await system.backUp("fw-x")
            #expect(code == 0, "\(finished)")
            #expect(finished.state == .succeeded, "\(finished)")
            FaultFigures(
                fault: "5 backups of one device cancelled mid-export", expected: 1,
                backups: try await system.backups(job: finished.id),
                recover: seconds(from: lastCancel, to: finished.finishedAt),
                recovery: "the 5th cancel → the 6th backup's job (`--wait`) finished (its finish time)"
            ).report()
        }
    }

    @Test("Four rounds of kill -9 of the worker holding a device's task: every job succeeds, once each")
    func killedWorkersNeverExhaustTheDevice() async throws {
        var spec = FleetSpec()
        spec.configSize = "4MiB"
        spec.device("fw-k", slowExportMs: 400)
        try await withBackupSystem(spec, workers: 2, leaseSeconds: 3) { system in
            var system = system
            let client = system.system.client()
            defer { client.close() }
            var (stored, longest) = ([Rampart_Backup_V1_Backup](), 0.0)
            for round in 0..<4 {
                let (job, killedAt) = try await Self.killHolderMidExport(&system, client, "fw-k", leaseSeconds: 3)
                let finished = try await Self.ended(client, job)
                #expect(finished.state == .succeeded, "round \(round): \(finished)")
                let backups = try await system.backups(job: job)
                #expect(backups.count == 1, "round \(round): exactly one backup record")
                stored += backups
                longest = max(longest, seconds(from: killedAt, to: finished.finishedAt))
            }
            FaultFigures(
                fault: "`kill -9` of the worker holding a device's task, 4 rounds", expected: 4, backups: stored,
                recover: longest, recovery: "kill → that round's job finished (its finish time; the longest of 4 rounds)"
            ).report()
        }
    }

    @Test("P10: a fleet backup of 14 devices after interrupted backups of 3 of them, the bus killed (kill -9) mid-job and restarted: the job succeeds, every target stored exactly once, nothing damaged")
    func fleetBackupAfterInterruptionsSurvivesABrokerKill() async throws {
        var spec = FleetSpec()
        // Three 1 MiB chunks per export. The devices interrupted earlier are slow (2 s a chunk), so that a
        // cancel, a kill -9 of a worker and the bus's kill land while their exports are read; the rest are
        // quicker (~1 s an export) and still running or waiting when the bus dies.
        spec.configSize = "3MiB"
        let interrupted = ["fw-c1", "fw-c2", "fw-k"]
        for name in interrupted { spec.device(name, slowExportMs: 2000) }
        let others = (1...11).map { String(format: "fw-%02d", $0) }
        for name in others { spec.device(name, slowExportMs: 300) }
        try await withBackupSystem(spec, workers: 2, leaseSeconds: 3) { backup in
            var backup = backup
            let system = backup.system
            let client = system.client()
            defer { client.close() }

            // Earlier: three backups each of fw-c1 and fw-c2 cancelled mid-export; the worker holding fw-k's
            // task killed (its retry then completes the job). Each left an export on its device.
            for device in ["fw-c1", "fw-c2"] {
                for _ in 0..<3 { _ = try await Self.cancelMidExport(backup, client, device) }
            }
            let (killedJob, _) = try await Self.killHolderMidExport(&backup, client, "fw-k", leaseSeconds: 3)
            let retried = try await Self.ended(client, killedJob)
            #expect(retried.state == .succeeded, "the job whose worker was killed: \(retried)")

            // The fleet backup, its first tasks on the interrupted devices; the bus dies while they are read.
            let targets = interrupted + others
            let job = try await system.startJob(targets)
            _ = try await eventually("the interrupted devices' exports are read", every: .milliseconds(50)) {
                () -> (Void?, String) in
                let current = try await getJob(client, job.id)
                let reading = current.tasks.filter {
                    interrupted.contains($0.targetName) && $0.state == .taskRunning && $0.progressPercent > 0
                }
                return (reading.count == interrupted.count ? () : nil, "\(current)")
            }
            let killedAt = Date()
            system.bus.kill9()
            let down = try await system.rampart("devices", "list", "--timeout", "2")
            #expect(down.exitCode == 5, "while the bus is down: \(down)")
            let restartedAt = Date()
            try system.restartBus()

            // Delayed, not lost: every target has exactly one backup of this job, intact.
            let finished = try await system.finishedJob(job.id, timeout: .seconds(300))
            let tasks = finished.tasks.map { "\($0.targetName) \($0.state.label) a\($0.attempts) \($0.message)" }
            #expect(finished.state == .succeeded, "\(finished.state.label): \(tasks)")
            let stored = try await system.backups(job: job.id)
            let byTarget = Dictionary(grouping: stored, by: \.ownerName)
            for target in targets {
                #expect(byTarget[target]?.count == 1, "\(target): \(byTarget[target]?.count ?? 0) backups of the fleet job")
            }
            #expect(stored.count == targets.count, "backups of the fleet job: \(stored.map(\.ownerName).sorted())")
            try await system.expectIntact(stored)
            let verify = try await system.rampart("storage", "verify", "--timeout", "60")
            #expect(verify.exitCode == 0, "\(verify)")
            FaultFigures(
                fault: "`kill -9` of the bus during a fleet backup, after 7 interrupted backups of 3 of its devices",
                expected: targets.count, backups: stored, held: seconds(from: killedAt, to: restartedAt),
                recover: seconds(from: killedAt, to: finished.finishedAt),
                recovery: "kill → the fleet job finished (its finish time)"
            ).report()
        }
    }
}
