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

    @Test("Five backups cancelled mid-export in a row, then a backup with --wait: it succeeds (the device held 4 exports at most)")
    func cancelledAttemptsReleaseTheirExports() async throws {
        var spec = FleetSpec()
        // 16 one-MiB chunks, 400 ms each: the cancel (a CLI process) lands mid-export even on a busy machine.
        spec.configSize = "16MiB"
        spec.device("fw-x", slowExportMs: 400)
        try await withBackupSystem(spec) { system in
            let client = system.system.client()
            defer { client.close() }
            for _ in 0..<5 {
                let (job, _) = try await Self.startAndWaitForExport(system, client, "fw-x")
                let cancelled = try await system.system.rampart("jobs", "cancel", job)
                #expect(cancelled.exitCode == 0, "\(cancelled)")
                _ = try await eventually("job \(job) ends", timeout: .seconds(60)) { () -> (Bool?, String) in
                    let state = try await getJob(client, job).state
                    return (state.isFinished ? true : nil, "\(state)")
                }
            }
            let (finished, code) = try await system.backUp("fw-x")
            #expect(code == 0, "\(finished)")
            #expect(finished.state == .succeeded, "\(finished)")
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
            for round in 0..<4 {
                let (job, task) = try await Self.startAndWaitForExport(system, client, "fw-k")
                let owner = try #require(try await leaseOwner(system, task), "round \(round)")
                let index = owner == "worker-1" ? 0 : 1
                system.workers[index].kill9()
                // A new worker process takes the dead one's place (same instance id, as a supervisor would).
                system.workers[index] = try system.system.start(
                    "backup-worker",
                    ["--instance-id", owner, "--lease-seconds", "3", "--retry-base-seconds", "0", "--schedule-interval-ms", "200"])
                let finished = try await eventually("job \(job) ends (round \(round))", timeout: .seconds(120)) {
                    () -> (Rampart_Backup_V1_Job?, String) in
                    let job = try await getJob(client, job)
                    return (job.state.isFinished ? job : nil, "\(job)")
                }
                #expect(finished.state == .succeeded, "round \(round): \(finished)")
                #expect(try await system.backups(job: job).count == 1, "round \(round): exactly one backup record")
            }
        }
    }
}
