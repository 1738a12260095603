import ArgumentParser
import Foundation
import BackupWorkerService
import RampartAPI
import RampartCore
import RampartDatabase
import RampartServiceBoot

/// `backup-worker`: serves the backup API and runs backup jobs from the durable queue. Start as
/// many as you like; they share the queue in PostgreSQL.
@main
struct BackupWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup-worker", abstract: "Rampart's backup worker: on-demand and scheduled backup jobs.")

    @OptionGroup var bus: BusOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    @Option(help: "This worker's id (default: backup-worker-<pid>-<random>).")
    var instanceId: String?

    @Option(help: "Tasks (devices, HA pairs, clusters) run at once by this worker (env RAMPART_WORKER_CONCURRENCY).")
    var concurrency: Int = Environment.value("RAMPART_WORKER_CONCURRENCY").flatMap(Int.init) ?? 4

    @Option(help: "Seconds a task's lease lasts without renewal; a dead worker's task runs again after it.")
    var leaseSeconds: Int = Environment.value("RAMPART_LEASE_SECONDS").flatMap(Int.init) ?? 15

    @Option(help: "Seconds before the first retry of a failed attempt (doubles each time, at most 60).")
    var retryBaseSeconds: Int = Environment.value("RAMPART_RETRY_BASE_SECONDS").flatMap(Int.init) ?? 2

    @Option(help: "How often schedules are checked, milliseconds.")
    var scheduleIntervalMs: Int = Environment.value("RAMPART_SCHEDULE_INTERVAL_MS").flatMap(Int.init) ?? 15_000

    @Option(help: "How often every schedule's targets are checked to still be registered, seconds (a change is an event).")
    var scheduleTargetCheckSeconds: Int = Environment.value("RAMPART_SCHEDULE_TARGET_CHECK_SECONDS").flatMap(Int.init) ?? 60

    @Option(help: "Retention: always keep this many newest backups per device or cluster (default 10). Any --keep-* flag sets the installation's policy at start, for every worker; without one the stored policy stands (rampart retention show|set).")
    var keepLast: Int?
    @Option(help: "Retention: keep the newest backup of each of this many last days (default 7).")
    var keepDaily: Int?
    @Option(help: "Retention: keep the newest backup of each of this many last weeks (default 4).")
    var keepWeekly: Int?
    @Option(help: "Retention: keep the newest backup of each of this many last months (default 6).")
    var keepMonthly: Int?

    /// The policy of the --keep-* flags (the default's numbers for those not given).
    var flagPolicy: RetentionPolicy {
        get throws {
            let base = RetentionPolicy.default
            return try RetentionPolicy(
                keepLast: keepLast ?? base.keepLast, keepDaily: keepDaily ?? base.keepDaily,
                keepWeekly: keepWeekly ?? base.keepWeekly, keepMonthly: keepMonthly ?? base.keepMonthly)
        }
    }

    /// Whether a --keep-* flag was given.
    var retentionFlagsGiven: Bool { [keepLast, keepDaily, keepWeekly, keepMonthly].contains { $0 != nil } }
    @Option(help: "Seconds between retention sweeps (0 = only when asked with `rampart backups prune`).")
    var pruneIntervalSeconds: Int = Environment.value("RAMPART_PRUNE_INTERVAL_SECONDS").flatMap(Int.init) ?? 3600

    @Option(help: "Backup objective of every device without its own: a device whose last good backup is older is stale (8d, 36h, 1d12h).")
    var backupObjective: String = Environment.value("RAMPART_BACKUP_OBJECTIVE") ?? "8d"

    @Option(help: "Seconds between checks of every device's last good backup against its objective (a crossing is an event).")
    var objectiveCheckSeconds: Int = Environment.value("RAMPART_OBJECTIVE_CHECK_SECONDS").flatMap(Int.init) ?? 60

    @Option(help: "The device-agent executable restore drills run (env RAMPART_DEVICE_AGENT; default: the one next to this executable).")
    var deviceAgent: String? = Environment.value("RAMPART_DEVICE_AGENT")

    func validate() throws {
        if let deviceAgent, !FileManager.default.isExecutableFile(atPath: deviceAgent) {
            throw ValidationError("--device-agent \(deviceAgent) is not an executable file")
        }
        guard BackupAPI.parseObjective(backupObjective) != nil else {
            throw ValidationError("--backup-objective '\(backupObjective)': a duration such as 8d, 36h or 1d12h, from 1s to 366d")
        }
        guard (1...86_400).contains(objectiveCheckSeconds) else {
            throw ValidationError("--objective-check-seconds must be between 1 and 86400")
        }
        guard pruneIntervalSeconds >= 0 else { throw ValidationError("--prune-interval-seconds must be 0 or more") }
        do {
            _ = try flagPolicy
        } catch let error as RetentionPolicyError {
            throw ValidationError("retention: \(error.message)")
        }
        guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be between 1 and 256") }
        guard (3...3600).contains(leaseSeconds) else { throw ValidationError("--lease-seconds must be between 3 and 3600") }
        guard (0...60).contains(retryBaseSeconds) else { throw ValidationError("--retry-base-seconds must be 0...60") }
        guard scheduleIntervalMs >= 100 else { throw ValidationError("--schedule-interval-ms must be at least 100") }
        guard (1...86_400).contains(scheduleTargetCheckSeconds) else {
            throw ValidationError("--schedule-target-check-seconds must be between 1 and 86400")
        }
    }

    func run() async throws {
        let boot = ServiceBoot("backup-worker", log: log)
        let policy = try flagPolicy
        try await boot.run(
            service: BackupAPI.serviceName, bus: bus, database: database, instanceId: instanceId,
            poolSize: max(database.poolSize, concurrency + 2), migrations: [BackupService.migrate]
        ) { resources, host in
            let pool = resources.pool
            let logger = resources.logger
            // The worker's id is its instance's: a task's lease names the worker holding it.
            let client = resources.client(of: host)
            var runner = JobRunner.Configuration(workerId: host.instanceId)
            runner.concurrency = concurrency
            runner.leaseSeconds = leaseSeconds
            runner.retryBaseSeconds = retryBaseSeconds
            if let deviceAgent { runner.deviceAgentPath = deviceAgent }
            let pruner = Pruner(pool: pool, client: client, policy: policy, logger: logger)
            try await pruner.storePolicy(
                replace: retentionFlagsGiven,
                setBy: retentionFlagsGiven ? "backup-worker \(host.instanceId) (--keep-* flags)" : "backup-worker (default)")
            let objective = BackupAPI.parseObjective(backupObjective) ?? BackupAPI.defaultObjectiveSeconds
            var services: [BootService] = [
                .required(
                    resources.serve(
                        BackupService(pool: pool, client: client, pruner: pruner, defaultObjective: objective).router(), on: host)),
                .required(JobRunner(configuration: runner, pool: pool, client: client, logger: logger)),
                .required(
                    Scheduler(
                        pool: pool, client: client, interval: .milliseconds(scheduleIntervalMs),
                        targetCheckInterval: .seconds(scheduleTargetCheckSeconds), logger: logger)),
            ]
            services.append(
                .required(
                    StalenessMonitor(
                        pool: pool, client: client, defaultObjective: objective, interval: .seconds(objectiveCheckSeconds),
                        logger: logger)))
            if pruneIntervalSeconds > 0 {
                services.append(.required(PruneLoop(pruner: pruner, interval: .seconds(pruneIntervalSeconds))))
            }
            return services
        }
    }
}
