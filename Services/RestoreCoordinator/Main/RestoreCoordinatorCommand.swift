import ArgumentParser
import RampartAPI
import RampartCore
import RampartDatabase
import RampartServiceBoot
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
        let boot = ServiceBoot("restore-coordinator", log: log)
        try await boot.run(
            service: RestoreAPI.serviceName, bus: bus, database: database, instanceId: instanceId, capacity: capacity,
            migrations: [RestoreCoordinatorService.migrate]
        ) { resources, host in
            var configuration = RestoreConfiguration(managerId: managerId)
            configuration.leaseTTL = .seconds(leaseSeconds)
            let service = RestoreCoordinatorService(
                configuration: configuration, pool: resources.pool, client: resources.client(of: host),
                logger: resources.logger)
            resources.logger.info(
                "coordinating restores",
                metadata: ["manager-id": "\(managerId ?? "the installation's (inventory)")", "lease-seconds": "\(leaseSeconds)"])
            return [
                .required(resources.serve(service.router(), on: host)),
                .required(ExpiryService(expiry: LeaseExpiry(service: service))),
            ]
        }
    }
}

/// Runs the lease sweep until the service group shuts down.
struct ExpiryService: Service {
    let expiry: LeaseExpiry

    func run() async throws {
        await cancelWhenGracefulShutdown { await expiry.run() }
    }
}
