import Hummingbird
import Logging
import NIOCore
import RampartAudit
import ServiceLifecycle
import StorageService

/// The storage's HTTP endpoint for signed download links (L2): `GET`/`HEAD /v1/backups/<backup id>/<file
/// name>?<signature>`. Every request is checked by a `LinkVerifier` (in production `link-signer` over
/// the bus) before a byte of the object is read; the object is streamed decrypted frame by frame, with
/// Range support, and each download is recorded as a `storage.download` event. Every request for a
/// download path, served or refused, is appended to the audit log (P9).
///
/// A ServiceLifecycle `Service`: run it in the storage's `ServiceGroup`. On graceful shutdown it stops
/// accepting connections, lets downloads in flight finish for up to `Configuration.drainTimeout`, then
/// cuts the rest off (they are recorded as incomplete).
public struct StorageHTTPServer: Service {
    /// Where to listen and how long to drain.
    public struct Configuration: Sendable {
        /// The address to bind (default 127.0.0.1).
        public var host: String
        /// The TCP port (default 7480; 0 picks a free one, see `onListening`).
        public var port: Int
        /// How long downloads in flight may go on after graceful shutdown begins.
        public var drainTimeout: Duration

        /// Settings for `host`:`port`.
        public init(host: String = "127.0.0.1", port: Int = 7480, drainTimeout: Duration = .seconds(10)) {
            self.host = host
            self.port = port
            self.drainTimeout = drainTimeout
        }
    }

    /// The settings.
    public let configuration: Configuration
    private let storage: StorageService
    private let verifier: any LinkVerifier
    private let audit: any AuditSink
    private let logger: Logger
    private let onListening: @Sendable (_ host: String, _ port: Int) async -> Void

    /// A server of `storage`'s objects, checking links with `verifier` and auditing every download request
    /// to `audit`; `onListening` is told the bound address once the socket listens.
    public init(
        configuration: Configuration, storage: StorageService, verifier: any LinkVerifier, audit: any AuditSink,
        logger: Logger,
        onListening: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }
    ) {
        self.configuration = configuration
        self.storage = storage
        self.verifier = verifier
        self.audit = audit
        self.logger = logger
        self.onListening = onListening
    }

    /// Serves until graceful shutdown (or cancellation); logs and throws when the address cannot be bound.
    public func run() async throws {
        let logger = logger
        let onListening = onListening
        let application = Application(
            responder: DownloadResponder(storage: storage, verifier: verifier, audit: audit),
            // Idle keep-alive connections and stalled request heads are closed after a minute; a response
            // in progress is never timed out by this.
            server: .http1(configuration: .init(idleTimeout: .seconds(60))),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port)),
            onServerRunning: { channel in
                let host = channel.localAddress?.ipAddress ?? ""
                let port = channel.localAddress?.port ?? 0
                let shown = host.contains(":") ? "[\(host)]" : host
                logger.info("HTTP downloads listening", metadata: ["address": "http://\(shown):\(port)"])
                await onListening(host, port)
            },
            logger: logger)
        let drainTimeout = configuration.drainTimeout
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await application.run()
                return true
            }
            group.addTask {
                // Ends (false) `drainTimeout` after graceful shutdown began; cancelled when the server ends first.
                try await gracefulShutdown()
                try await Task.sleep(for: drainTimeout)
                return false
            }
            defer { group.cancelAll() }
            var cutOff = false
            while true {
                do {
                    guard let serverEnded = try await group.next(), !serverEnded else { return }
                    logger.warning(
                        "HTTP downloads still running after the drain timeout; cutting them off",
                        metadata: ["drain-timeout": "\(drainTimeout)"])
                    cutOff = true
                    group.cancelAll()
                } catch {
                    // Cancellation (ours after the drain timeout, or the group's) ends the server quietly;
                    // anything else (the address cannot be bound) is a failure of the service.
                    if cutOff || error is CancellationError || Task.isCancelled { return }
                    logger.error(
                        "HTTP downloads stopped",
                        metadata: [
                            "address": "\(configuration.host):\(configuration.port)",
                            "error": "\(String(reflecting: error))",
                        ])
                    throw error
                }
            }
        }
    }
}
