import Logging
import Postgres
import RampartAudit
import RampartBus
import RampartCore
import RampartDatabase
import ServiceLifecycle
import Synchronization

/// The one way a Rampart service process starts and stops (docs/decisions.md, "One way to boot a
/// service"): logging; the bus key and the host configuration; the schema migrations, the service's
/// and then the audit log's; a database pool; then the service's own lifecycle services in one
/// `ServiceGroup` that shuts down gracefully on SIGTERM or SIGINT. A `Main` states only what is its
/// own: its options, its router, its extra services.
///
/// The pool and the bus clients are lifecycle services too, started before the services that use
/// them: the group stops services in reverse order, so they close after every service that uses them
/// has stopped, also when one of those threw (it shuts the others down gracefully rather than
/// cancelling them all at once).
public struct ServiceBoot: Sendable {
    /// The process's name ("inventory"): its logger is `rampart.<name>`, its bus key
    /// `services/<name>.key` of a key folder.
    public let name: String
    /// The process's logger, labelled `rampart.<name>`.
    public let logger: Logger

    /// Brings one schema up to date on one connection before the pool opens (`InventoryService.migrate`:
    /// its `Migration`s through `Migrator`).
    public typealias MigrateSchema = (PostgresConnection, Logger) throws -> Void

    /// Installs logging for the whole process (once per process) and names it.
    public init(_ name: String, log: LogOptions) {
        self.name = name
        self.logger = log.bootstrap("rampart.\(name)")
    }

    /// Runs a bus service until a graceful shutdown: its key (`--key`, or `services/<name>.key` of
    /// `--keys`), its host configuration (`service` on `--bus`, `instanceId`, `capacity`, the heartbeat),
    /// then what `run(database:poolSize:migrations:_:)` does. `build` makes the service's own lifecycle
    /// services from the shared resources and the host configuration, in the order they start.
    public func run(
        service: String, bus: BusOptions, database: DatabaseOptions, instanceId: String?, capacity: UInt32 = 64,
        poolSize: Int? = nil, migrations: [MigrateSchema],
        _ build: (ServiceResources, ServiceHost.Configuration) async throws -> [BootService]
    ) async throws {
        let security = try bus.security(defaultKey: "services/\(name).key", logger: logger)
        var configuration = ServiceHost.Configuration(
            service: service, brokerEndpoint: bus.endpoint, security: security, instanceId: instanceId)
        configuration.capacity = capacity
        configuration.heartbeatIntervalMs = bus.heartbeatMs
        let host = configuration
        try await run(database: database, poolSize: poolSize, migrations: migrations) { resources in
            try await build(resources, host)
        }
    }

    /// Runs a process with a database until a graceful shutdown: `migrations` then the audit log's on
    /// one connection (waiting for the server while it starts), a pool of `poolSize` connections
    /// (default `--database-pool`), then the services `build` makes in one `ServiceGroup`, the pool and
    /// the clients made through `resources` closed after them. When `build` throws, what it opened is
    /// closed and the error thrown.
    public func run(
        database: DatabaseOptions, poolSize: Int? = nil, migrations: [MigrateSchema],
        _ build: (ServiceResources) async throws -> [BootService]
    ) async throws {
        try await Startup.withDatabase(database.connectionString, logger: logger) { connection in
            for migrate in migrations { try migrate(connection, logger) }
            try AuditLog.migrate(connection: connection, logger: logger)
        }
        let pool = PostgresPool(
            connectionString: database.connectionString, size: poolSize ?? database.poolSize, logger: logger)
        let resources = ServiceResources(pool: pool, logger: logger)
        let services: [BootService]
        do {
            services = try await build(resources)
        } catch {
            await resources.closeAll()
            throw error
        }
        try await Self.runGroup(closedLast: resources.closers, services: services, logger: logger)
    }

    /// Runs `closedLast` (the resources) and then `services` in one `ServiceGroup` until SIGTERM or
    /// SIGINT (when `handlesSignals`), or until one of `services` throws: the group then stops the others
    /// gracefully in reverse order, the resources last, and throws that error.
    static func runGroup(
        closedLast: [ClosedLast], services: [BootService], handlesSignals: Bool = true, logger: Logger
    ) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: closedLast.map { .init(service: $0) } + services.map(\.configuration),
                gracefulShutdownSignals: handlesSignals ? [.sigterm, .sigint] : [], logger: logger))
        try await group.run()
    }
}

/// What every service process shares, for its `Main` to build its own services from: the logger,
/// the database pool, the audit log, and bus clients closed after the services that use them.
public final class ServiceResources: Sendable {
    /// The process's logger.
    public let logger: Logger
    /// The database pool; closed by the group after every service.
    public let pool: PostgresPool
    /// The audit log in the pool's database (P9).
    public let audit: AuditLog
    private let registered: Mutex<[ClosedLast]>

    init(pool: PostgresPool, logger: Logger) {
        self.logger = logger
        self.pool = pool
        self.audit = AuditLog(pool: pool, logger: logger)
        self.registered = Mutex([ClosedLast("database pool") { await pool.close() }])
    }

    /// What the group closes after the services, in the order registered (it stops them in reverse).
    var closers: [ClosedLast] { registered.withLock { $0 } }

    /// Has the group run `close` after every service has stopped (and after what is registered later).
    public func closeAfterServices(_ name: String, _ close: @escaping @Sendable () async -> Void) {
        registered.withLock { $0.append(ClosedLast(name, close)) }
    }

    /// A bus client to `endpoint`, closed after the services.
    public func client(endpoint: String, security: BusSecurity, caller: String) -> BusClient {
        let client = BusClient(endpoint: endpoint, security: security, caller: caller, logger: logger)
        closeAfterServices("bus client \(caller)") { client.close() }
        return client
    }

    /// A bus client with `host`'s broker and key, calling as `caller` (default: the instance's id);
    /// closed after the services.
    public func client(of host: ServiceHost.Configuration, caller: String? = nil) -> BusClient {
        client(endpoint: host.brokerEndpoint, security: host.security, caller: caller ?? host.instanceId)
    }

    /// Serves `router` as `host`, recording its audited and refused calls in the audit log (P7, P9).
    public func serve(_ router: ServiceRouter, on host: ServiceHost.Configuration) -> ServiceHost {
        ServiceHost(configuration: host, router: router.auditing(into: audit), logger: logger)
    }

    /// Closes everything registered, the last first (when the group never ran).
    func closeAll() async {
        for closer in closers.reversed() { await closer.close() }
    }
}

/// One of a process's own lifecycle services, as `ServiceBoot` runs it.
public struct BootService: Sendable {
    let configuration: ServiceGroupConfiguration.ServiceConfiguration

    /// A service the process cannot do without. When it throws, the group shuts the others down
    /// gracefully in reverse order of start — the pool and clients last — and the process ends with
    /// its error; when it returns by itself (a bug) the group is cancelled and the process ends with
    /// an error.
    public static func required(_ service: any Service) -> BootService {
        BootService(
            configuration: .init(
                service: service, successTerminationBehavior: .cancelGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup))
    }

    /// A service whose failure (logged by itself) leaves the others running: storage's HTTP downloads
    /// when their port is taken by another instance on the host.
    public static func failureIgnored(_ service: any Service) -> BootService {
        BootService(configuration: .init(service: service, failureTerminationBehavior: .ignore))
    }
}

/// A resource as a lifecycle service: it waits for the group's graceful shutdown (or cancellation),
/// then closes the resource. Started before the services that use it, it is stopped after them.
struct ClosedLast: Service, CustomStringConvertible {
    let description: String
    let close: @Sendable () async -> Void

    init(_ name: String, _ close: @escaping @Sendable () async -> Void) {
        self.description = name
        self.close = close
    }

    func run() async {
        try? await gracefulShutdown()
        await close()
    }
}
