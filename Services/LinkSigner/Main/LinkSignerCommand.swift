import ArgumentParser
import Foundation
import LinkSignerService
import RampartAPI
import RampartBus
import RampartCore
import RampartCrypto
import RampartDatabase
import RampartLinks
import RampartRPC
import RampartServiceBoot

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
        let boot = ServiceBoot("link-signer", log: log)
        let key: MasterKey
        do {
            key = try MasterKey.loadOrCreate(at: masterKey)
        } catch {
            boot.logger.critical("refusing to start", metadata: ["error": "\(error)"])
            throw ExitCode(78)  // EX_CONFIG
        }
        if clockOffsetFile != nil {
            boot.logger.warning(
                "the clock is offset by a file: for tests only", metadata: ["file": "\(clockOffsetFile ?? "")"])
        }
        try await boot.run(
            service: LinksAPI.serviceName, bus: bus, database: database, instanceId: instanceId, capacity: capacity,
            migrations: [LinkSignerService.migrate]
        ) { resources, host in
            let logger = resources.logger
            let service = LinkSignerService(
                configuration: LinkSignerConfiguration(baseURL: baseURL), pool: resources.pool, masterKey: key,
                client: resources.client(of: host), clock: LinkClock(offsetFile: clockOffsetFile), logger: logger)
            // A signing key that does not open under this master key: refused before serving anything.
            do {
                try await resources.pool.withConnection { try service.prepareKeys(on: $0) }
            } catch let error as RPCError {
                logger.critical("refusing to start", metadata: ["error": "\(error.message)"])
                throw ExitCode(78)
            }
            logger.info("signing links", metadata: ["base-url": "\(baseURL)", "master-key": "\(key.id)"])
            return [.required(resources.serve(service.router(), on: host))]
        }
    }
}
