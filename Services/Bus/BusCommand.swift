import ArgumentParser
import Logging
import Postgres
import RampartAudit
import RampartBus
import RampartCore
import ServiceLifecycle

/// `bus`: the broker (request routing by service name, heartbeats), the event publisher and the
/// journal service, in one process; also the `audit` service that reads the audit log.
@main
struct BusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "Rampart's message bus: routes requests to services and publishes the event journal.")

    @Option(help: "Where the broker listens (env RAMPART_BUS_LISTEN).")
    var listen: String = Environment.value("RAMPART_BUS_LISTEN") ?? BusOptions.defaultEndpoint

    @Option(help: "Where events are published (env RAMPART_EVENTS_LISTEN).")
    var publish: String = Environment.value("RAMPART_EVENTS_LISTEN") ?? "tcp://127.0.0.1:7401"

    @Option(help: "The publish endpoint told to subscribers (default: --publish, with * as 127.0.0.1).")
    var advertiseEvents: String?

    @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval with service instances, ms (env RAMPART_HEARTBEAT_MS).")
    var heartbeatMs: Int64 = Environment.value("RAMPART_HEARTBEAT_MS").flatMap { Int64($0) } ?? 2500

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard heartbeatMs >= 10 else { throw ValidationError("--heartbeat-ms must be at least 10") }
    }

    func run() async throws {
        let logger = log.bootstrap("rampart.bus")
        try await Startup.withDatabase(database.connectionString, logger: logger) { connection in
            try EventOutbox.migrate(connection: connection, logger: logger)
            try AuditLog.migrate(connection: connection, logger: logger)
        }
        let internalEndpoint = "inproc://rampart-broker"
        let broker = Broker(
            endpoints: [listen, internalEndpoint],
            configuration: .init(heartbeatIntervalMs: heartbeatMs), logger: logger)
        let publisher = EventPublisher(
            connectionString: database.connectionString, endpoint: publish, logger: logger)
        let advertised = advertiseEvents
        let pool = PostgresPool(connectionString: database.connectionString, size: database.poolSize, logger: logger)
        var journalHost = ServiceHost.Configuration(service: BusProtocol.journalService, brokerEndpoint: internalEndpoint)
        journalHost.heartbeatIntervalMs = heartbeatMs
        let journal = ServiceHost(
            configuration: journalHost,
            router: JournalService.router(pool: pool) {
                advertised ?? (publisher.boundEndpoint ?? "").replacingOccurrences(of: "*", with: "127.0.0.1")
                    .replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
            },
            logger: logger)
        var auditHost = ServiceHost.Configuration(service: AuditAPI.serviceName, brokerEndpoint: internalEndpoint)
        auditHost.heartbeatIntervalMs = heartbeatMs
        let audit = ServiceHost(
            configuration: auditHost, router: AuditService.router(log: AuditLog(pool: pool, logger: logger)),
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: broker), .init(service: publisher), .init(service: journal), .init(service: audit),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await pool.close()
    }
}
