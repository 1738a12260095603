import BackupWorkerService
import Foundation
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
            service: BackupService.serviceName, method: BackupService.Method.startBackup, request)
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
    static func ended(_ client: BusClient, _ id: String, timeout: Duration = .seconds(120)) async throws -> Rampart_Backup_V1_Job {
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
    static func killHolderMidExport(_ system: inout BackupSystem, _ client: BusClient, _ device: String, leaseSeconds: Int)
        async throws -> (job: String, killedAt: Date)
    {
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
                backups: try await system.backups(job: finished.id), recover: seconds(from: lastCancel, to: finished.finishedAt),
                recovery: "the 5th cancel → the 6th backup (`--wait`) succeeded (its finish time)"
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
                recover: longest, recovery: "kill → that round's job succeeded (its finish time; the longest of 4 rounds)"
            ).report()
        }
    }
}
