import ArgumentParser
import Logging
import RampartAPI
import RampartAudit
import RampartBus
import RampartCore
import RampartDatabase
import RampartServiceBoot

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

    @Option(name: .customLong("key"), help: "The broker's key file (env RAMPART_BROKER_KEY; default DIR/broker.key of --keys).")
    var keyFileFlag: String?

    /// The flag, or else $RAMPART_BROKER_KEY.
    var keyFile: String? { keyFileFlag ?? Environment.value("RAMPART_BROKER_KEY") }

    @Option(
        name: .customLong("authorized-keys"),
        help: "The authorized keys file (env RAMPART_AUTHORIZED_KEYS; default DIR/authorized_keys of --keys).")
    var authorizedKeysFlag: String?

    /// The flag, or else $RAMPART_AUTHORIZED_KEYS.
    var authorizedKeys: String? { authorizedKeysFlag ?? Environment.value("RAMPART_AUTHORIZED_KEYS") }

    @Option(name: .customLong("keys"), help: "A key folder made by `rampart keys init` (env RAMPART_KEYS).")
    var keysDirectoryFlag: String?

    /// The flag, or else $RAMPART_KEYS.
    var keysDirectory: String? { keysDirectoryFlag ?? Environment.value("RAMPART_KEYS") }

    @Flag(
        name: .customLong("insecure-plain"),
        help: "No CURVE: no authentication, no encryption; loopback only (env RAMPART_INSECURE_PLAIN=1).")
    var insecurePlainFlag = false

    /// Plain mode was asked for, by the flag or by RAMPART_INSECURE_PLAIN=1.
    var insecurePlain: Bool { insecurePlainFlag || Environment.value("RAMPART_INSECURE_PLAIN") == "1" }

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard heartbeatMs >= 10 else { throw ValidationError("--heartbeat-ms must be at least 10") }
    }

    /// The broker's security from the options, with the ZAP handler to start first (CURVE).
    func security(logger: Logger) throws -> (BrokerSecurity, ZAPHandler?) {
        let keyPath = keyFile ?? keysDirectory.map { KeyFolder(path: $0).brokerKeyPath }
        let authorizedPath = authorizedKeys ?? keysDirectory.map { KeyFolder(path: $0).authorizedKeysPath }
        guard let keyPath, let authorizedPath else {
            guard insecurePlain else {
                throw ValidationError(
                    "no broker key: pass --keys DIR (made by `rampart keys init DIR`), or --key and --authorized-keys, or, on loopback only, --insecure-plain")
            }
            try BusOptions.allowPlain(endpoints: [listen, publish], logger: logger)
            return (.plain, nil)
        }
        let file = try BusKeyFile.load(keyPath)
        guard file.role == BusKeyFile.brokerRole else { throw BusKeyError("\(keyPath) is not a broker key (role \(file.role))") }
        let authorized = try AuthorizedKeysSource(path: authorizedPath, logger: logger)
        let zap = ZAPHandler(logger: logger) { request in BusAdmission.decide(request, keys: authorized.current(maxAgeMs: 0)) }
        logger.info(
            "CURVE on every tcp endpoint",
            metadata: ["broker-key": "\(file.keys.publicKey)", "authorized-keys": "\(authorized.current.entries.count)"])
        return (.curve(secretKey: file.keys.secretKey, authorized: authorized), zap)
    }

    func run() async throws {
        let boot = ServiceBoot("bus", log: log)
        let logger = boot.logger
        let (security, zap) = try security(logger: logger)
        try zap?.start()
        defer { zap?.stop() }
        try await boot.run(database: database, migrations: [EventOutbox.migrate]) { resources in
            let internalEndpoint = "inproc://rampart-broker"
            // Device registrations are checked against inventory, asked over the bus inside this process.
            let inventoryClient = resources.client(
                endpoint: internalEndpoint, security: security.instanceSecurity, caller: "bus")
            let deviceCheck = DeviceIdentityCheck(client: inventoryClient, logger: logger)
            let broker = Broker(
                endpoints: [listen, internalEndpoint], security: security,
                configuration: .init(heartbeatIntervalMs: heartbeatMs), auditor: resources.audit.auditor,
                deviceCheck: { await deviceCheck.check($0) }, logger: logger)
            let publisher = EventPublisher(
                connectionString: database.connectionString, endpoint: publish, secretKey: security.secretKey,
                authorized: security.authorized, logger: logger)
            let advertised = advertiseEvents
            var journalHost = ServiceHost.Configuration(
                service: BusProtocol.journalService, brokerEndpoint: internalEndpoint, security: security.instanceSecurity)
            journalHost.heartbeatIntervalMs = heartbeatMs
            let journal = resources.serve(
                JournalService.router(pool: resources.pool) {
                    advertised ?? (publisher.boundEndpoint ?? "").replacingOccurrences(of: "*", with: "127.0.0.1")
                        .replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
                },
                on: journalHost)
            var auditHost = ServiceHost.Configuration(
                service: AuditAPI.serviceName, brokerEndpoint: internalEndpoint, security: security.instanceSecurity)
            auditHost.heartbeatIntervalMs = heartbeatMs
            let audit = resources.serve(AuditService.router(log: resources.audit), on: auditHost)
            return [.required(broker), .required(publisher), .required(journal), .required(audit)]
        }
    }
}
