import Foundation
import Logging
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC
import ServiceLifecycle

/// Runs one simulated device (`device-agent run`): finds itself in inventory (registering with
/// `register`), records the registration in its configuration tree, serves `device/<id>` and reports
/// its presence until a graceful shutdown, when it reports itself disconnected.
public struct DeviceRunner: Service {
    /// Settings of a runner.
    public struct Configuration: Sendable {
        /// The broker.
        public var busEndpoint: String
        /// The device's bus key (role `device`, named as the device), or plain.
        public var security: BusSecurity
        /// Heartbeat with the broker, ms.
        public var heartbeatMs: Int64 = 2500
        /// Register in inventory when not found.
        public var register = false
        /// The manager to register with.
        /// The manager to register with; empty: the installation's (inventory fills it in, R6).
        public var managerId = ""
        /// How often presence is reported, ms.
        public var presenceIntervalMs: Int64 = 10_000
        /// Export failure switches.
        public var options = DeviceAgent.Options()
        /// Requests served at once.
        public var capacity: UInt32 = 8

        /// Defaults for a device on the broker at `busEndpoint`.
        public init(busEndpoint: String, security: BusSecurity) {
            self.busEndpoint = busEndpoint
            self.security = security
        }
    }

    private let folder: DeviceFolder
    private let configuration: Configuration
    private let client: BusClient
    private let logger: Logger
    private let known: Rampart_Inventory_V1_Device?
    private let power: DevicePower?

    /// A runner of the device in `folder`. `known` is its inventory record when already resolved (a
    /// fleet resolves and reports presence first, with bounded concurrency).
    public init(
        folder: DeviceFolder, configuration: Configuration, client: BusClient, logger: Logger,
        known: Rampart_Inventory_V1_Device? = nil, power: DevicePower? = nil
    ) {
        self.power = power
        self.folder = folder
        self.configuration = configuration
        self.client = client
        var logger = logger
        logger[metadataKey: "device"] = "\(folder.facts.name)"
        self.logger = logger
        self.known = known
    }

    /// Serves until a graceful shutdown (or cancellation).
    public func run() async throws {
        let device: Rampart_Inventory_V1_Device
        if let known {
            device = known
        } else {
            guard
                let found = try await cancelWhenGracefulShutdown({ [self] in
                    try await Self.resolve(
                        facts: folder.facts, register: configuration.register, managerId: configuration.managerId,
                        client: client, logger: logger)
                }) as Rampart_Inventory_V1_Device?
            else { return }
            device = found
            await Self.reportPresence(device.id, true, client: client, logger: logger)
        }
        if Task.isShuttingDownGracefully || Task.isCancelled {
            // Connected was reported (here, or by the restore's boot for a known device): say it is gone.
            await Self.reportPresence(device.id, false, client: client, logger: logger)
            return
        }
        let managerId = device.managerID.isEmpty ? configuration.managerId : device.managerID
        try folder.writeRegistration(managerId: managerId, deviceId: device.id)
        let agent = DeviceAgent(folder: folder, deviceId: device.id, managerId: managerId, options: configuration.options)
        var hostConfiguration = ServiceHost.Configuration(
            service: DeviceAgent.serviceName(deviceId: device.id), brokerEndpoint: configuration.busEndpoint,
            security: configuration.security,
            instanceId: "device-agent-\(folder.facts.name)")
        hostConfiguration.capacity = configuration.capacity
        hostConfiguration.heartbeatIntervalMs = configuration.heartbeatMs
        hostConfiguration.serial = folder.facts.serial
        let host = ServiceHost(configuration: hostConfiguration, router: agent.router(), logger: logger)
        power?.attach(host)
        let power = power
        let interval = configuration.presenceIntervalMs
        // The first periodic report comes at a random point of the interval, so a fleet's reports spread out.
        let firstDelay = known == nil ? interval : Int64.random(in: 1...max(1, interval))
        defer { _ = agent }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await host.run() }
                // Reports until the instance has stopped serving (a graceful shutdown drains it first).
                group.addTask { [client, logger] in
                    var delay = firstDelay
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(delay))
                        delay = interval
                        if let power, power.state != .on { continue }  // a frozen device says nothing
                        agent.exports.prune()
                        // Only an instance the bus took speaks for the device: an old box refused because its
                        // identity now lives on a replacement (P8) must not tell inventory anything about it.
                        guard host.isRegistered else { continue }
                        await Self.reportPresence(device.id, true, client: client, logger: logger)
                    }
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        } catch is CancellationError {
        } catch {
            if power?.state != .off, host.isRegistered {
                await Self.reportPresence(device.id, false, client: client, logger: logger)
            }
            throw error
        }
        // Switched off, a device says nothing: it is seen as gone when its heartbeats stop. One the bus
        // refused says nothing either: the device is another appliance's now.
        if power?.state != .off, host.isRegistered {
            await Self.reportPresence(device.id, false, client: client, logger: logger)
        }
    }

    /// Finds the device named `facts.name` in inventory, registering it when absent and `register` is set.
    /// Retries while inventory is unreachable (until cancelled); refuses a device of that name with
    /// another serial.
    public static func resolve(
        facts: DeviceProfile, register: Bool, managerId: String, client: BusClient, logger: Logger
    ) async throws -> Rampart_Inventory_V1_Device {
        var backoff: Int64 = 200
        var attempt = 0
        while true {
            try Task.checkCancellation()
            attempt += 1
            do {
                var lookup = Rampart_Inventory_V1_GetDeviceRequest()
                lookup.device = facts.name
                do {
                    let response: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                        InventoryAPI.getDevice, lookup,
                        timeout: .seconds(5), idempotent: true)
                    guard response.device.serial == facts.serial else {
                        throw AgentError(
                            "inventory has a device named \(facts.name) with serial \(response.device.serial), "
                                + "but this device's serial is \(facts.serial): refusing to run as another appliance")
                    }
                    return response.device
                } catch let error as RPCError where error.code == .notFound {
                    guard register else {
                        throw AgentError(
                            "device \(facts.name) is not registered in inventory; register it (rampart devices register) or pass --register")
                    }
                }
                var request = Rampart_Inventory_V1_RegisterDeviceRequest()
                request.device = facts.inventoryDevice
                request.device.managerID = managerId
                do {
                    let response: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                        InventoryAPI.registerDevice, request,
                        timeout: .seconds(10))
                    logger.notice("registered in inventory", metadata: ["device-id": "\(response.device.id)"])
                    return response.device
                } catch let error as RPCError where error.code == .alreadyExists {
                    // Registered meanwhile (a retried request, another runner): look again, once.
                    if attempt > 3 { throw AgentError("cannot register \(facts.name): \(error.message)") }
                    if error.message.contains("serial") {
                        throw AgentError("cannot register \(facts.name): \(error.message)")
                    }
                    continue
                }
            } catch let error as RPCError where error.code == .unavailable || error.code == .deadlineExceeded {
                logger.warning(
                    "inventory not reachable yet, retrying", metadata: ["error": "\(error)", "retry-ms": "\(backoff)"])
                try await Task.sleep(for: .milliseconds(backoff))
                backoff = min(backoff * 2, 5000)
            } catch let error as RPCError {
                throw AgentError("inventory refused device \(facts.name): \(error.description)")
            }
        }
    }

    /// Reports presence; failures are logged, never thrown (the next report will tell). The call runs
    /// to its answer (or its timeout) even when the caller is cancelled: a report abandoned in flight
    /// could still reach inventory after the shutdown's "disconnected" and leave the device shown
    /// connected (R12 would then refuse its replacement).
    public static func reportPresence(_ deviceId: String, _ connected: Bool, client: BusClient, logger: Logger) async {
        var request = Rampart_Inventory_V1_ReportPresenceRequest()
        request.device = deviceId
        request.connected = connected
        request.sequence = PresenceSequence.next()
        request.reporter = PresenceSequence.reporter
        await Task {
            do {
                let _: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                    InventoryAPI.reportPresence, request,
                    timeout: .seconds(connected ? 5 : 2), idempotent: true)
            } catch {
                logger.warning("presence not reported", metadata: ["connected": "\(connected)", "error": "\(error)"])
            }
        }.value
    }
}
