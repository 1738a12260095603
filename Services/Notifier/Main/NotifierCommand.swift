import ArgumentParser
import Foundation
import NotifierService
import RampartAPI
import RampartCore
import RampartCrypto
import RampartServiceBoot

/// `notifier`: tells webhooks of the events they chose (P15), once each, in order, across its own
/// restarts and the hooks' outages. Hooks are added with `rampart notify add`.
@main
struct NotifierCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notifier",
        abstract: "Rampart's notifier: POSTs chosen events to webhooks as JSON (P15; docs/notifications.md).")

    @OptionGroup var bus: BusOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    @Option(help: "This instance's id (default: notifier-<pid>-<random>).")
    var instanceId: String?

    @Option(help: "Seconds before the first retry of a hook that failed; doubled after each failure (env RAMPART_NOTIFY_RETRY_BASE_SECONDS).")
    var retryBaseSeconds: Double = Environment.value("RAMPART_NOTIFY_RETRY_BASE_SECONDS").flatMap(Double.init) ?? 1

    @Option(help: "The longest wait between two retries of a hook, in seconds (env RAMPART_NOTIFY_RETRY_MAX_SECONDS).")
    var retryMaxSeconds: Double = Environment.value("RAMPART_NOTIFY_RETRY_MAX_SECONDS").flatMap(Double.init) ?? 60

    @Option(help: "Seconds a hook may take to answer one POST (env RAMPART_NOTIFY_TIMEOUT_SECONDS).")
    var requestTimeoutSeconds: Double = Environment.value("RAMPART_NOTIFY_TIMEOUT_SECONDS").flatMap(Double.init) ?? 10

    @Option(help: "Milliseconds between two reads of the journal for a hook no live event woke.")
    var pollMs: Int = 1000

    @Option(help: """
        The file holding the key hook URLs and secrets are sealed under (32 bytes, mode 0600; created when \
        missing). Every notifier of an installation needs the same key (env RAMPART_NOTIFY_MASTER_KEY).
        """)
    var masterKey: String = Environment.value("RAMPART_NOTIFY_MASTER_KEY") ?? ".rampart/notifier/master.key"

    func validate() throws {
        guard retryBaseSeconds > 0, retryMaxSeconds >= retryBaseSeconds, retryMaxSeconds <= 3600 else {
            throw ValidationError("--retry-base-seconds must be above 0 and at most --retry-max-seconds (at most 3600)")
        }
        guard requestTimeoutSeconds > 0, requestTimeoutSeconds <= 60 else {
            throw ValidationError("--request-timeout-seconds must be between 0 and 60")
        }
        guard pollMs >= 10, pollMs <= 60_000 else { throw ValidationError("--poll-ms must be between 10 and 60000") }
    }

    func run() async throws {
        let boot = ServiceBoot("notifier", log: log)
        let sealing = HookSealing(key: try MasterKey.loadOrCreate(at: masterKey))
        var delivery = DeliveryConfiguration(sealing: sealing)
        delivery.backoff = Backoff(
            base: .milliseconds(Int64(retryBaseSeconds * 1000)), maximum: .milliseconds(Int64(retryMaxSeconds * 1000)))
        delivery.requestTimeout = .milliseconds(Int64(requestTimeoutSeconds * 1000))
        delivery.leaseSeconds = max(30, Int(requestTimeoutSeconds * 3))
        delivery.pollInterval = .milliseconds(pollMs)
        let configuration = delivery
        try await boot.run(
            service: NotifyAPI.serviceName, bus: bus, database: database, instanceId: instanceId,
            migrations: [
                NotifierService.migrate,
                { connection, logger in try NotifierService.sealPlainHooks(sealing, connection: connection, logger: logger) },
            ]
        ) { resources, host in
            let client = resources.client(of: host)
            let sender = HTTPWebhookSender()
            let service = NotifierService(
                pool: resources.pool, client: client, sender: sender, configuration: configuration, logger: resources.logger)
            let dispatcher = Dispatcher(
                pool: resources.pool, client: client, sender: sender, configuration: configuration, owner: host.instanceId,
                logger: resources.logger)
            resources.logger.info(
                "notifying",
                metadata: ["retry-base": "\(configuration.backoff.base)", "retry-max": "\(configuration.backoff.maximum)",
                           "master-key": "\(sealing.keyId)"])
            return [.required(resources.serve(service.router(), on: host)), .required(dispatcher)]
        }
    }
}
