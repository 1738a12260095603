import ArgumentParser
import BackupWorkerService
import Foundation
import Logging
import Postgres
import RampartAudit
import RampartBus
import RampartCore
import ServiceLifecycle

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

    @Option(help: "Retention: always keep this many newest backups per device or cluster.")
    var keepLast = RetentionPolicy.default.keepLast
    @Option(help: "Retention: keep the newest backup of each of this many last days.")
    var keepDaily = RetentionPolicy.default.keepDaily
    @Option(help: "Retention: keep the newest backup of each of this many last weeks.")
    var keepWeekly = RetentionPolicy.default.keepWeekly
    @Option(help: "Retention: keep the newest backup of each of this many last months.")
    var keepMonthly = RetentionPolicy.default.keepMonthly
    @Option(help: "Seconds between retention sweeps (0 = only when asked with `rampart backups prune`).")
    var pruneIntervalSeconds: Int = Environment.value("RAMPART_PRUNE_INTERVAL_SECONDS").flatMap(Int.init) ?? 3600

    func validate() throws {
        guard pruneIntervalSeconds >= 0 else { throw ValidationError("--prune-interval-seconds must be 0 or more") }
        do {
            _ = try RetentionPolicy(keepLast: keepLast, keepDaily: keepDaily, keepWeekly: keepWeekly, keepMonthly: keepMonthly)
        } catch {
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
        let logger = log.bootstrap("rampart.backup-worker")
        try await Startup.withDatabase(database.connectionString, logger: logger) { connection in
            try BackupService.migrate(connection: connection, logger: logger)
            try AuditLog.migrate(connection: connection, logger: logger)
        }
        let pool = PostgresPool(
            connectionString: database.connectionString, size: max(database.poolSize, concurrency + 2), logger: logger)
        let security = try bus.security(defaultKey: "services/backup-worker.key", logger: logger)
        var host = ServiceHost.Configuration(
            service: BackupService.serviceName, brokerEndpoint: bus.endpoint, security: security, instanceId: instanceId)
        host.heartbeatIntervalMs = bus.heartbeatMs
        let workerId = host.instanceId
        let client = BusClient(endpoint: bus.endpoint, security: security, caller: workerId, logger: logger)
        var runner = JobRunner.Configuration(workerId: workerId)
        runner.concurrency = concurrency
        runner.leaseSeconds = leaseSeconds
        runner.retryBaseSeconds = retryBaseSeconds
        let policy = try RetentionPolicy(
            keepLast: keepLast, keepDaily: keepDaily, keepWeekly: keepWeekly, keepMonthly: keepMonthly)
        let pruner = Pruner(pool: pool, client: client, policy: policy, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: ServiceHost(
                configuration: host, router: BackupService(pool: pool, client: client, pruner: pruner).router()
                    .auditing(into: AuditLog(pool: pool, logger: logger)),
                logger: logger)),
            .init(service: JobRunner(configuration: runner, pool: pool, client: client, logger: logger)),
            .init(service: Scheduler(
                    pool: pool, client: client, interval: .milliseconds(scheduleIntervalMs),
                    targetCheckInterval: .seconds(scheduleTargetCheckSeconds), logger: logger)),
        ]
        if pruneIntervalSeconds > 0 {
            services.append(.init(service: PruneLoop(pruner: pruner, interval: .seconds(pruneIntervalSeconds))))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        client.close()
        await pool.close()
    }
}
