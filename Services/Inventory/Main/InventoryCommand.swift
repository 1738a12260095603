import ArgumentParser
import InventoryService
import Logging
import Postgres
import RampartAudit
import RampartBus
import RampartCore
import ServiceLifecycle

/// `inventory`: serves devices, HA pairs and clusters on the bus. Start as many as you like.
@main
struct InventoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inventory", abstract: "Rampart's inventory service: devices, HA pairs, clusters.")

    @OptionGroup var bus: BusOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    @Option(help: "This instance's id (default: inventory-<pid>-<random>).")
    var instanceId: String?

    @Option(help: "Requests served at once.")
    var capacity: UInt32 = 64

    @Option(
        help: ArgumentHelp(
            "How often the bus's liveness of devices is polled, ms (env RAMPART_PRESENCE_POLL_MS; default: half the heartbeat interval).",
            discussion: "A device the bus dropped (no heartbeat for 3 intervals) is then marked disconnected. 0: presence only from reports."))
    var presencePollMs: Int64? = Environment.value("RAMPART_PRESENCE_POLL_MS").flatMap { Int64($0) }

    func validate() throws {
        if let presencePollMs, presencePollMs != 0, presencePollMs < 50 {
            throw ValidationError("--presence-poll-ms must be 0 (off) or at least 50")
        }
    }

    func run() async throws {
        let logger = log.bootstrap("rampart.inventory")
        try await Startup.withDatabase(database.connectionString, logger: logger) { connection in
            try InventoryService.migrate(connection: connection, logger: logger)
            try AuditLog.migrate(connection: connection, logger: logger)
        }
        let pool = PostgresPool(connectionString: database.connectionString, size: database.poolSize, logger: logger)
        let security = try bus.security(defaultKey: "services/inventory.key", logger: logger)
        var host = ServiceHost.Configuration(
            service: InventoryService.serviceName, brokerEndpoint: bus.endpoint, security: security, instanceId: instanceId)
        host.capacity = capacity
        host.heartbeatIntervalMs = bus.heartbeatMs
        let service = ServiceHost(configuration: host, router: InventoryService(pool: pool).router().auditing(into: AuditLog(pool: pool, logger: logger)),
            logger: logger)
        // Presence follows the bus's liveness: polled twice per heartbeat interval (docs/decisions.md).
        let client = BusClient(endpoint: bus.endpoint, security: security, caller: host.instanceId, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: service)]
        let pollMs = presencePollMs ?? max(50, bus.heartbeatMs / 2)
        if pollMs > 0 {
            services.append(.init(service: PresenceWatcher(pool: pool, client: client, pollIntervalMs: pollMs, logger: logger)))
        } else {
            logger.notice("presence comes only from reports: the bus's liveness is not followed (--presence-poll-ms 0)")
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        client.close()
        await pool.close()
    }
}
