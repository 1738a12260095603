import ArgumentParser
import Foundation
import LinkSignerService
import Logging
import Postgres
import RampartAudit
import RampartBus
import RampartCore
import RampartCrypto
import RampartLinks
import ServiceLifecycle

/// `link-signer`: signs short-lived download links for backup files (L2) and checks them for
/// storage's HTTP endpoint. Several instances may share the database and the master key.
@main
struct LinkSignerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link-signer",
        abstract: "Rampart's link-signer: signed, short-lived download URLs for backup files (L2).")

    @OptionGroup var bus: BusOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    @Option(
        help: "Where storage's HTTP endpoint is reached by those who download, without a trailing path (env RAMPART_LINK_BASE_URL).")
    var baseURL: String = Environment.value("RAMPART_LINK_BASE_URL") ?? "http://127.0.0.1:7480"

    @Option(
        help: "Master key file sealing the signing keys: 32 bytes, mode 0600; created on first start (env RAMPART_LINK_MASTER_KEY).")
    var masterKey: String = Environment.value("RAMPART_LINK_MASTER_KEY") ?? ".rampart/link-signer/master.key"

    @Option(help: "This instance's id (default: link-signer-<pid>-<random>).")
    var instanceId: String?

    @Option(help: "Requests served at once.")
    var capacity: UInt32 = 64

    @Option(
        help: ArgumentHelp(
            "Testing only: a file holding seconds to add to the clock links are signed and checked at.",
            visibility: .hidden))
    var clockOffsetFile: String?

    func validate() throws {
        guard let url = URL(string: baseURL), let scheme = url.scheme, ["http", "https"].contains(scheme),
            url.host != nil, url.path.isEmpty || url.path == "/", url.query == nil
        else {
            throw ValidationError("--base-url must be like http://host:port (scheme, host and port only), not '\(baseURL)'")
        }
        guard capacity > 0 else { throw ValidationError("--capacity must be at least 1") }
    }

    func run() async throws {
        let logger = log.bootstrap("rampart.link-signer")
        let key: MasterKey
        do {
            key = try MasterKey.loadOrCreate(at: masterKey)
        } catch {
            logger.critical("refusing to start", metadata: ["error": "\(error)"])
            throw ExitCode(78)  // EX_CONFIG
        }
        if clockOffsetFile != nil {
            logger.warning("the clock is offset by a file: for tests only", metadata: ["file": "\(clockOffsetFile ?? "")"])
        }
        let pool = PostgresPool(connectionString: database.connectionString, size: database.poolSize, logger: logger)
        let security = try bus.security(defaultKey: "services/link-signer.key", logger: logger)
        var host = ServiceHost.Configuration(
            service: LinksAPI.serviceName, brokerEndpoint: bus.endpoint, security: security, instanceId: instanceId)
        host.capacity = capacity
        host.heartbeatIntervalMs = bus.heartbeatMs
        let client = BusClient(endpoint: bus.endpoint, security: security, caller: host.instanceId, logger: logger)
        let service = LinkSignerService(
            configuration: LinkSignerConfiguration(baseURL: baseURL), pool: pool, masterKey: key, client: client,
            clock: LinkClock(offsetFile: clockOffsetFile), logger: logger)
        do {
            try await Startup.withDatabase(database.connectionString, logger: logger) { connection in
                try LinkSignerService.migrate(connection: connection, logger: logger)
                try AuditLog.migrate(connection: connection, logger: logger)
                try service.prepareKeys(on: connection)
            }
        } catch let error as RPCError {
            logger.critical("refusing to start", metadata: ["error": "\(error.message)"])
            throw ExitCode(78)
        }
        logger.info("signing links", metadata: ["base-url": "\(baseURL)", "master-key": "\(key.id)"])
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(
                        service: ServiceHost(
                            configuration: host, router: service.router().auditing(into: AuditLog(pool: pool, logger: logger)),
                            logger: logger))
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        client.close()
        await pool.close()
    }
}
