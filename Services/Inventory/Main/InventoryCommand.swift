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
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await pool.close()
    }
}
