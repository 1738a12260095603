import Foundation
import Logging
import RampartBasics
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC
import ServiceLifecycle

/// Lines typed at the device CLI, as an async stream; `standardInput()` reads them from stdin (a
/// terminal or a pipe) on a thread of its own.
public final class ConsoleInput: Sendable {
    /// The lines, without their line ends; finishes at end of input.
    public let lines: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation

    /// An input fed by hand (`feed`, `finish`).
    public init() {
        (lines, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    /// Adds a line.
    public func feed(_ line: String) { continuation.yield(line) }

    /// Ends the input (as end of file would).
    public func finish() { continuation.finish() }

    /// The process's standard input, read line by line on a dedicated thread until end of file.
    public static func standardInput() -> ConsoleInput {
        let input = ConsoleInput()
        Thread.start(named: "device-cli-stdin") {
            while let line = readLine(strippingNewline: true) { input.feed(line) }
            input.finish()
        }
        return input
    }
}

/// `device-agent cli`: the device's interactive command line (R1, R2). Reads commands line by line,
/// prompting with `> `; `restore remote-manager-backup ...` runs a `RestoreSession` (`... check ...` only
/// its checks, changing nothing). After a restore the CLI user is logged out, the device "reboots" and
/// then runs as the restored device — found in inventory by the id in its restored
/// manager-registration.json — serving `device/<id>` like `device-agent run` until a graceful shutdown.
/// End of input or `exit` ends the CLI.
public struct DeviceCLI: Service {
    /// Settings of the CLI.
    public struct Configuration: Sendable {
        /// The broker.
        public var busEndpoint: String
        /// The device's bus key (role `device`), or plain.
        public var security: BusSecurity
        /// Heartbeat with the broker, ms.
        public var heartbeatMs: Int64 = 2500
        /// The logged-in user.
        public var user = "admin"
        /// How long the simulated reboot takes, ms.
        public var rebootDelayMs: Int64 = 3000
        /// Presence reports of the restored device, ms.
        public var presenceIntervalMs: Int64 = 10_000
        /// The manager the device belongs to (only used when serving).
        public var managerId = ""
        /// Each call to the restore coordinator.
        public var callTimeout: Duration = .seconds(10)
        /// How backups are fetched.
        public var fetch = FetchSettings()
        /// Failure injection points of the apply step (tests).
        public var hooks = ConfigSwap.Hooks()
        /// Test switch (`--hold-before-write FILE`): a restore waits here after staging, before writing.
        public var holdBeforeWrite: RestoreSession.Hold?
        /// Test switch (`--hold-reboot FILE`): the reboot lasts until this ends.
        public var holdReboot: RestoreSession.Hold?

        /// Defaults for a device on the broker at `busEndpoint`.
        public init(busEndpoint: String, security: BusSecurity) {
            self.busEndpoint = busEndpoint
            self.security = security
        }
    }

    private let directory: String
    private let configuration: Configuration
    private let input: ConsoleInput
    private let console: any DeviceConsole
    private let logger: Logger

    /// The CLI of the device in `directory`, reading `input` and writing `console`.
    public init(
        directory: String, configuration: Configuration, input: ConsoleInput, console: any DeviceConsole, logger: Logger
    ) {
        self.directory = directory
        self.configuration = configuration
        self.input = input
        self.console = console
        self.logger = logger
    }

    /// Runs the CLI; after a restore, serves the restored device until a graceful shutdown.
    public func run() async throws {
        if let recovery = try ConfigSwap.recover(directory: directory) {
            let what =
                switch recovery {
                case .removedStaging: "removed the staging folder of an interrupted restore (nothing had been written)"
                case .rolledBack: "an interrupted restore was rolled back: the previous configuration is in place"
                case .completedCommit: "finished an interrupted restore that had been committed"
                }
            console.line("recovery: \(what)")
            logger.notice("restore recovery", metadata: ["outcome": "\(recovery)"])
        }
        let folder = try DeviceFolder.open(directory)
        var logger = logger
        logger[metadataKey: "device"] = "\(folder.facts.name)"
        let facts = folder.facts
        console.line(
            "\(facts.name): simulated threat defense \(facts.model), serial \(facts.serial), software \(facts.software) "
                + "patch \(facts.patch), management IP \(facts.managementIp)")
        console.line("user \(configuration.user) logged in; type 'help' for the commands")

        // The CLI session's bus connection (the restore coordinator), and the device's own after its reboot.
        let sessionClient = BusClient(
            endpoint: configuration.busEndpoint, security: configuration.security, caller: "device-cli:\(configuration.user)@\(facts.name)",
            logger: logger)
        let deviceClient = BusClient(
            endpoint: configuration.busEndpoint, security: configuration.security, caller: "device-agent@\(facts.name)", logger: logger)
        defer {
            sessionClient.close()
            deviceClient.close()
        }
        let restored = try await withGracefulShutdownHandler {
            try await session(sessionClient: sessionClient, deviceClient: deviceClient, logger: logger)
        } onGracefulShutdown: { [input] in
            input.finish()
        }
        sessionClient.close()
        guard let restored else { return }
        if Task.isShuttingDownGracefully || Task.isCancelled {
            await DeviceRunner.reportPresence(restored.device.id, false, client: deviceClient, logger: logger)
            return
        }
        var runnerConfiguration = DeviceRunner.Configuration(
            busEndpoint: configuration.busEndpoint, security: configuration.security)
        runnerConfiguration.heartbeatMs = configuration.heartbeatMs
        runnerConfiguration.presenceIntervalMs = configuration.presenceIntervalMs
        runnerConfiguration.managerId = configuration.managerId
        console.line("device: serving \(DeviceAgent.serviceName(deviceId: restored.device.id)) on the bus")
        let runner = DeviceRunner(
            folder: restored.folder, configuration: runnerConfiguration, client: deviceClient, logger: logger,
            known: restored.device)
        try await runner.run()
    }

    /// The command loop; returns the restored device when a restore logged the user out, nil at end of
    /// input or `exit`.
    private func session(sessionClient: BusClient, deviceClient: BusClient, logger: Logger) async throws
        -> RestoreSession.Restored?
    {
        var lines = input.lines.makeAsyncIterator()
        while !Task.isShuttingDownGracefully {
            console.prompt("> ")
            guard let line = await lines.next() else {
                console.line("")
                return nil
            }
            let command: DeviceCommand
            do throws(RestoreError) {
                command = try DeviceCommandParser.parse(line)
            } catch {
                console.line("error: \(error.message)")
                continue
            }
            switch command {
            case .empty:
                continue
            case .help:
                console.line(DeviceCommandParser.help)
            case .exit:
                console.line("user \(configuration.user) logged out")
                return nil
            case .check(let source):
                // Changes nothing; the session goes on whatever the checks found.
                _ = await restoreSession(sessionClient).check(source)
            case .restore(let source):
                let restore = restoreSession(sessionClient)
                let outcome = await restore.run(source) { [logger] folder in
                    try await RestoredDevice.boot(folder, client: deviceClient, logger: logger)
                }
                switch outcome {
                case .notRestored:
                    continue
                case .restored(let restored):
                    return restored
                case .restoredButNotBack(let error):
                    throw AgentError(error.message)
                }
            }
        }
        return nil
    }

    /// A restore (or check) of this device, calling the restore coordinator through `client`.
    private func restoreSession(_ client: BusClient) -> RestoreSession {
        var sessionConfiguration = RestoreSession.Configuration()
        sessionConfiguration.user = configuration.user
        sessionConfiguration.rebootDelayMs = configuration.rebootDelayMs
        sessionConfiguration.fetch = configuration.fetch
        sessionConfiguration.hooks = configuration.hooks
        sessionConfiguration.holdBeforeWrite = configuration.holdBeforeWrite
        sessionConfiguration.holdReboot = configuration.holdReboot
        return RestoreSession(
            directory: directory, configuration: sessionConfiguration,
            coordinator: BusRestoreCoordinator(client: client, timeout: configuration.callTimeout),
            console: console, logger: logger)
    }
}

/// The restored device coming back after its reboot (R9): it finds itself in inventory by the device
/// id of its restored manager-registration.json — not by name and serial, since inventory still holds
/// the original appliance's serial until the coordinator records the rejoin — and reports itself
/// connected, which the coordinator checks before it accepts the rejoin.
public enum RestoredDevice {
    /// Finds the device and reports it connected; retries while inventory is unreachable (up to `patience`).
    public static func boot(
        _ folder: DeviceFolder, client: BusClient, logger: Logger, patience: Duration = .seconds(60)
    ) async throws -> Rampart_Inventory_V1_Device {
        let registration = try folder.registration()
        guard !registration.deviceId.isEmpty else {
            throw AgentError("the restored manager-registration.json names no device")
        }
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        var lookup = Rampart_Inventory_V1_GetDeviceRequest()
        lookup.device = registration.deviceId
        let device: Rampart_Inventory_V1_Device = try await retrying(
            "inventory lookup", until: deadline, logger: logger
        ) {
            let response: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.getDevice, lookup,
                timeout: .seconds(5), idempotent: true)
            return response.device
        }
        if device.serial != folder.facts.serial {
            logger.notice(
                "inventory still has the original appliance's serial; the restore coordinator updates it at rejoin",
                metadata: ["inventory-serial": "\(device.serial)", "serial": "\(folder.facts.serial)"])
        }
        var presence = Rampart_Inventory_V1_ReportPresenceRequest()
        presence.device = device.id
        presence.connected = true
        presence.sequence = PresenceSequence.next()  // the same number on every retry: applied once
        presence.reporter = PresenceSequence.reporter
        let connected: Rampart_Inventory_V1_Device = try await retrying(
            "presence report", until: deadline, logger: logger
        ) {
            let response: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.reportPresence, presence,
                timeout: .seconds(5), idempotent: true)
            return response.device
        }
        return connected.id.isEmpty ? device : connected
    }

    /// `body`, retried with backoff while the bus or inventory is unavailable, until `deadline`.
    static func retrying<T: Sendable>(
        _ what: String, until deadline: ContinuousClock.Instant, logger: Logger, _ body: () async throws -> T
    ) async throws -> T {
        var backoff: Int64 = 200
        while true {
            do {
                return try await body()
            } catch let error as RPCError where error.code == .unavailable || error.code == .deadlineExceeded {
                guard ContinuousClock.now + .milliseconds(backoff) < deadline else {
                    throw AgentError("\(what) failed: inventory did not answer (\(error))")
                }
                logger.warning("\(what): inventory not reachable, retrying", metadata: ["retry-ms": "\(backoff)"])
                try await Task.sleep(for: .milliseconds(backoff))
                backoff = min(backoff * 2, 3000)
            } catch let error as RPCError where error.code == .notFound {
                throw AgentError(
                    "\(what): inventory has no such device (\(error.message)); the backup's device is not registered")
            } catch let error as RPCError {
                throw AgentError("\(what) refused by inventory: \(error)")
            }
        }
    }
}
