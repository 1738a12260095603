import Foundation
import Logging
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC
import ServiceLifecycle
import ZeroMQ

/// Runs a fleet of simulated devices in one process (`device-agent fleet`): prepares each device's
/// folder (`DIR/<name>/`, initialised when missing), resolves (and with `register` registers) every
/// device with bounded concurrency, creates the HA pairs and clusters, then serves every device with
/// its own `ServiceHost` until a graceful shutdown.
public struct FleetRunner: Service {
    private let directory: String
    private let spec: FleetSpec
    private let base: DeviceRunner.Configuration
    private let client: BusClient
    private let deviceSecurity: @Sendable (String) throws -> BusSecurity
    private let logger: Logger
    private let concurrency: Int

    /// A fleet of `spec` under `directory`; each device runs with `base` plus its own failure switches
    /// and its own bus key (`deviceSecurity(name)`). `client` (an operator's key) registers what is
    /// missing when `base.register` is set.
    public init(
        directory: String, spec: FleetSpec, base: DeviceRunner.Configuration, client: BusClient,
        deviceSecurity: @escaping @Sendable (String) throws -> BusSecurity, logger: Logger, concurrency: Int = 16
    ) {
        self.deviceSecurity = deviceSecurity
        self.directory = directory
        self.spec = spec
        self.base = base
        self.client = client
        self.logger = logger
        self.concurrency = max(1, concurrency)
    }

    /// Prepares the device folders: opens each, or initialises it when missing. Refuses a folder whose
    /// facts name another serial than the spec.
    public static func prepare(directory: String, spec: FleetSpec, concurrency: Int = 4) async throws -> [DeviceFolder] {
        try spec.validate()
        let size = try spec.configBytes()
        return try await boundedMap(spec.devices, concurrency: concurrency) { device in
            let path = directory + "/" + device.name
            if FileManager.default.fileExists(atPath: path + "/facts.json") {
                let folder = try DeviceFolder.open(path)
                guard folder.facts.serial == device.serial else {
                    throw AgentError("\(path) holds device serial \(folder.facts.serial), but the spec says \(device.serial)")
                }
                return folder
            }
            return try DeviceFolder.initialize(at: path, facts: device.facts(configSize: size))
        }
    }

    /// Runs the fleet until a graceful shutdown.
    public func run() async throws {
        let started = ContinuousClock.now
        let prepared = try await Self.prepare(directory: directory, spec: spec)
        logger.notice("device folders ready", metadata: ["devices": "\(prepared.count)", "elapsed": "\(ContinuousClock.now - started)"])
        let filesAllowed = OpenFiles.raiseToHardLimit()
        let fit = Self.devicesThatFit(limit: filesAllowed)
        let folders = Array(prepared.prefix(fit))
        if prepared.count > fit {
            let left = prepared.dropFirst(fit).map(\.facts.name)
            logger.error(
                "this process may not open enough files for the whole fleet: the devices that fit are run, the others are not; run the fleet as several processes (each with its own --spec)",
                metadata: ["devices": "\(prepared.count)", "run": "\(fit)", "not-run": "\(left.count)",
                           "first-not-run": "\(left.prefix(5).joined(separator: ","))",
                           "files-allowed": "\(filesAllowed)", "files-per-device": "\(Self.filesPerDevice)"])
        }
        // Each device talks with its own key; a missing key stops the fleet before anything connects.
        let securities = try folders.map { try deviceSecurity($0.facts.name) }
        let clients = zip(folders, securities).map { folder, security in
            BusClient(endpoint: base.busEndpoint, security: security, caller: "device-agent@\(folder.facts.name)", logger: logger)
        }
        defer { for client in clients { client.close() } }
        // A device that cannot be resolved now (the bus not answering it, the process out of descriptors)
        // is left to its runner, which resolves it when it boots, and boots again after a failure.
        let resolved = try await cancelWhenGracefulShutdown { [self] in
            try await Self.boundedMap(Array(zip(folders, clients)), concurrency: concurrency) { [self] folder, deviceClient
                -> Rampart_Inventory_V1_Device? in
                do {
                    let device = try await DeviceRunner.resolve(
                        facts: folder.facts, register: base.register, managerId: base.managerId, client: client, logger: logger)
                    await DeviceRunner.reportPresence(device.id, true, client: deviceClient, logger: logger)
                    return device
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    logger.error(
                        "device not resolved in inventory; it tries again when it boots",
                        metadata: ["device": "\(folder.facts.name)", "error": "\(error)"])
                    return nil
                }
            }
        }
        logger.notice(
            "devices resolved in inventory",
            metadata: ["devices": "\(resolved.compactMap { $0 }.count)", "of": "\(resolved.count)",
                       "elapsed": "\(ContinuousClock.now - started)"])
        if base.register { try await createGroups() }
        if Task.isShuttingDownGracefully { return }
        let byName = Dictionary(uniqueKeysWithValues: spec.devices.map { ($0.name, $0) })
        let powers = Dictionary(uniqueKeysWithValues: folders.map { ($0.facts.name, DevicePower()) })
        try await withThrowingDiscardingTaskGroup { group in
            for ((folder, device), (security, deviceClient)) in zip(zip(folders, resolved), zip(securities, clients)) {
                var configuration = base
                configuration.security = security
                let entry = byName[folder.facts.name]
                configuration.options.failExport = entry?.failExport ?? false
                configuration.options.slowExportMs = entry?.slowExportMs ?? 0
                let power = powers[folder.facts.name]!
                group.addTask { [logger] in
                    // Each boot serves until a graceful shutdown or until the device is switched off; switched
                    // on again, it boots afresh (a new instance, no exports). A device that fails (the process
                    // out of file descriptors, most often) is logged and booted again after a pause: the
                    // others go on serving.
                    var failures = 0
                    while true {
                        let runner = DeviceRunner(
                            folder: folder, configuration: configuration, client: deviceClient, logger: logger, known: device,
                            power: power)
                        do {
                            try await runner.run()
                            failures = 0
                        } catch {
                            if Task.isShuttingDownGracefully || Task.isCancelled { return }
                            failures += 1
                            let pause = Self.restartPause(afterFailures: failures)
                            logger.error(
                                "device stopped; booting it again after a pause",
                                metadata: ["device": "\(folder.facts.name)", "error": "\(error)", "failures": "\(failures)",
                                           "pause": "\(pause)"])
                            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
                            if Task.isShuttingDownGracefully || Task.isCancelled { return }
                            continue
                        }
                        guard power.state == .off, !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
                        try await cancelWhenGracefulShutdown { try await power.waitUntilOn() }
                        if Task.isShuttingDownGracefully { return }
                        logger.notice("switched on: booting", metadata: ["device": "\(folder.facts.name)"])
                    }
                }
            }
            group.addTask { [self] in try await followPowerSwitches(powers) }
            logger.notice("fleet serving", metadata: ["devices": "\(folders.count)", "elapsed": "\(ContinuousClock.now - started)"])
        }
    }

    /// Open files one simulated device holds while it serves: two ZeroMQ sockets (its bus client and its
    /// service instance), each with libzmq's mailbox, a TCP connection and Rampart's wakeup (measured:
    /// 6,619 descriptors for a fleet of 1,100; docs/device-agent.md).
    static let filesPerDevice = 6

    /// Descriptors kept for the process itself, beyond its devices': libdispatch's timers and signal
    /// sources, logs, the files an export or a restore opens. Running out of them is not an error a
    /// process can report: libdispatch stops it (SIGILL) when it cannot make a descriptor it needs.
    static let reservedFiles = 256

    /// How many devices one process runs when it may open `limit` files.
    static func devicesThatFit(limit: Int) -> Int {
        max(0, (limit - reservedFiles) / filesPerDevice)
    }

    /// The pause before a failed device boots again: 1 s, doubling, at most 30 s.
    static func restartPause(afterFailures failures: Int) -> Duration {
        .seconds(min(30, 1 << min(failures - 1, 5)))
    }

    /// Applies the fleet's power switches (`DIR/power/<name>`, written by `device-agent power`) every
    /// quarter of a second, until a graceful shutdown.
    private func followPowerSwitches(_ powers: [String: DevicePower]) async throws {
        try? await cancelWhenGracefulShutdown { [self] in
            var warned: Set<String> = []
            while !Task.isCancelled {
                let wanted = DevicePower.read(fleet: directory) { name, text in
                    if warned.insert(name).inserted {
                        logger.warning("power switch ignored: not on, off or frozen", metadata: ["device": "\(name)", "text": "\(text)"])
                    }
                }
                for (name, power) in powers {
                    let state = wanted[name] ?? .on
                    if power.state != state {
                        logger.notice("power switch", metadata: ["device": "\(name)", "from": "\(power.state)", "to": "\(state)"])
                        power.set(state)
                    }
                }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Creates the spec's HA pairs and clusters in inventory; ones that already exist are fine (re-runs).
    private func createGroups() async throws {
        for pair in spec.haPairs ?? [] {
            var request = Rampart_Inventory_V1_CreateHaPairRequest()
            request.name = pair.name
            request.primary = pair.primary
            request.secondary = pair.secondary
            try await createIgnoringExisting("HA pair \(pair.name)") {
                let _: Rampart_Inventory_V1_HaPairResponse = try await client.call(
                    InventoryAPI.createHaPair, request,
                    timeout: .seconds(10))
            }
        }
        for cluster in spec.clusters ?? [] {
            var request = Rampart_Inventory_V1_CreateClusterRequest()
            request.name = cluster.name
            request.control = cluster.control
            request.data = cluster.data
            try await createIgnoringExisting("cluster \(cluster.name)") {
                let _: Rampart_Inventory_V1_ClusterResponse = try await client.call(
                    InventoryAPI.createCluster, request,
                    timeout: .seconds(10))
            }
        }
    }

    private func createIgnoringExisting(_ what: String, _ body: () async throws -> Void) async throws {
        do {
            try await body()
            logger.notice("created \(what)")
        } catch let error as RPCError
            where error.code == .alreadyExists
            || (error.code == .failedPrecondition && error.message.contains("already in"))
        {
            logger.info("\(what) already there", metadata: ["reason": "\(error.message)"])
        } catch let error as RPCError {
            throw AgentError("inventory refused \(what): \(error.description)")
        }
    }

    /// `body` over `items` with at most `concurrency` running at once; results in input order.
    static func boundedMap<T: Sendable, R: Sendable>(
        _ items: [T], concurrency: Int, _ body: @escaping @Sendable (T) async throws -> R
    ) async throws -> [R] {
        try await withThrowingTaskGroup(of: (Int, R).self) { group in
            var results = [R?](repeating: nil, count: items.count)
            var next = 0
            for _ in 0..<min(concurrency, items.count) {
                let index = next
                group.addTask { (index, try await body(items[index])) }
                next += 1
            }
            while let (index, result) = try await group.next() {
                results[index] = result
                if next < items.count {
                    let index = next
                    group.addTask { (index, try await body(items[index])) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }
}
