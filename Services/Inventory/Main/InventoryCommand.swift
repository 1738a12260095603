import ArgumentParser
import InventoryService
import RampartAPI
import RampartCore
import RampartDatabase
import RampartServiceBoot

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
        let boot = ServiceBoot("inventory", log: log)
        try await boot.run(
            service: InventoryAPI.serviceName, bus: bus, database: database, instanceId: instanceId,
            capacity: capacity, migrations: [InventoryService.migrate]
        ) { resources, host in
            let router = InventoryService(pool: resources.pool).router()
            var services: [BootService] = [.required(resources.serve(router, on: host))]
            // Presence follows the bus's liveness: polled twice per heartbeat interval (docs/decisions.md).
            let pollMs = presencePollMs ?? max(50, bus.heartbeatMs / 2)
            if pollMs > 0 {
                services.append(
                    .required(
                        PresenceWatcher(
                            pool: resources.pool, client: resources.client(of: host), pollIntervalMs: pollMs,
                            logger: resources.logger)))
            } else {
                resources.logger.notice(
                    "presence comes only from reports: the bus's liveness is not followed (--presence-poll-ms 0)")
            }
            return services
        }
    }
}
