import ArgumentParser
import Logging
import Postgres
import RampartAPI
import RampartAudit
import RampartBus
import RampartCore
import RestoreCoordinatorService
import ServiceLifecycle

/// `restore-coordinator`: restore leases that keep HA pairs and clusters alive while devices are
/// replaced (R1–R14), the post-restore checklist and deploys. Several instances may share the database.
@main
struct RestoreCoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore-coordinator",
        abstract: "Rampart's restore coordinator: one restore at a time per HA pair and cluster, in the right order.")

    @OptionGroup var bus: BusOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    @Option(help: "This manager's id: backups taken under another are refused (R6) (env RAMPART_MANAGER_ID; default: the installation's, made by inventory at its first start).")
    var managerId: String? = Environment.value("RAMPART_MANAGER_ID")

    @Option(
        help: "Seconds a lease lives without a report from its device; then it expires and the next restore may start (env RAMPART_RESTORE_LEASE_SECONDS).")
    var leaseSeconds: Int = Environment.value("RAMPART_RESTORE_LEASE_SECONDS").flatMap { Int($0) } ?? 60

    @Option(help: "This instance's id (default: restore-coordinator-<pid>-<random>).")
    var instanceId: String?

    @Option(help: "Requests served at once.")
    var capacity: UInt32 = 64

    func validate() throws {
        if let managerId, managerId.isEmpty { throw ValidationError("--manager-id must not be empty") }
        guard (1...3600).contains(leaseSeconds) else { throw ValidationError("--lease-seconds must be between 1 and 3600") }
        guard capacity > 0 else { throw ValidationError("--capacity must be at least 1") }
    }

    func run() async throws {
        let logger = log.bootstrap("rampart.restore-coordinator")
        try await Startup.withDatabase(database.connectionString, logger: logger) { connection in
            try RestoreCoordinatorService.migrate(connection: connection, logger: logger)
            try AuditLog.migrate(connection: connection, logger: logger)
        }
        let pool = PostgresPool(connectionString: database.connectionString, size: database.poolSize, logger: logger)
        let security = try bus.security(defaultKey: "services/restore-coordinator.key", logger: logger)
        var host = ServiceHost.Configuration(
            service: RestoreAPI.serviceName, brokerEndpoint: bus.endpoint, security: security, instanceId: instanceId)
        host.capacity = capacity
        host.heartbeatIntervalMs = bus.heartbeatMs
        let client = BusClient(endpoint: bus.endpoint, security: security, caller: host.instanceId, logger: logger)
        var configuration = RestoreConfiguration(managerId: managerId)
        configuration.leaseTTL = .seconds(leaseSeconds)
        let service = RestoreCoordinatorService(configuration: configuration, pool: pool, client: client, logger: logger)
        logger.info(
            "coordinating restores",
            metadata: ["manager-id": "\(managerId ?? "the installation's (inventory)")", "lease-seconds": "\(leaseSeconds)"])
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(
                        service: ServiceHost(
                            configuration: host, router: service.router().auditing(into: AuditLog(pool: pool, logger: logger)),
                            logger: logger)),
                    .init(service: ExpiryService(expiry: LeaseExpiry(service: service))),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        client.close()
        await pool.close()
    }
}

/// Runs the lease sweep until the service group shuts down.
struct ExpiryService: Service {
    let expiry: LeaseExpiry

    func run() async throws {
        await cancelWhenGracefulShutdown { await expiry.run() }
    }
}
