import Foundation
import RampartAPI
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC
import SwiftProtobuf

/// `bus-bench --restore-leases BUS`: decision latency of `restore-coordinator`'s RequestLease under
/// concurrent requesters (docs/benchmarks.md, "Restore leases and restores"; run by
/// dev/bench-restore.sh).
///
/// Registers HA pairs and clusters in inventory over the bus (every device disconnected so that R12
/// passes, except the control nodes of the first half of the clusters, so that their data nodes can be
/// granted too), builds each device's manifest, then runs K requester tasks that each pick a device at
/// random and ask for a lease: granted or refused, each answer is one decision. A granted lease is
/// ended at once (ReportStep(applying), then ReportFailed with its token) so that the scope frees up.
/// Phases: one requester, then K, each asking again at once (closed loop); K pausing between requests
/// (about 1 s and 0.4 s on average); the inventory lookups the coordinator makes per decision, alone,
/// with one requester and with K. Each phase prints latency percentiles and, with `--cpu NAME=PID`, the
/// CPU time each watched process spent.
enum RestoreLeases {
    struct Options {
        var bus: String
        var decisions = 20_000
        var requesters = 100
        var pairs = 50
        var clusters = 10
        var clusterNodes = 3
        var clients = 10
        var warmUp = 500
        var uncontendedDecisions = 2_000
        /// Mean pauses of the paced runs, ms, and how many decisions each makes.
        var thinkMs = [1000, 400]
        var pacedDecisions = 4_000
        /// Processes whose CPU time each phase reports ("postgres" counts its children too).
        var watch: [(name: String, pid: Int32)] = []
    }

    /// One device's lease request, ready to send (the replacement's serial is set per request).
    struct Target: Sendable {
        var name: String
        var device: Rampart_Inventory_V1_Device
        var request: Rampart_Restore_V1_RequestLeaseRequest
    }

    /// What one requester saw.
    struct Tally: Sendable {
        var decisions: [Double] = []  // ms, RequestLease round trips
        var granted: [Double] = []
        var refused: [Double] = []
        var steps: [Double] = []  // ReportStep(applying) under a granted lease
        var ends: [Double] = []  // ReportFailed: ends the lease
        var reasons: [String: Int] = [:]
        var errors: [String: Int] = [:]

        /// Calls made to the coordinator: decisions plus the reports under granted leases.
        var calls: Int { decisions.count + steps.count + ends.count }

        mutating func merge(_ other: Tally) {
            decisions += other.decisions
            granted += other.granted
            refused += other.refused
            steps += other.steps
            ends += other.ends
            reasons.merge(other.reasons, uniquingKeysWith: +)
            errors.merge(other.errors, uniquingKeysWith: +)
        }
    }

    static let managerId = "rampart-manager"
    static let timeout: Duration = .seconds(30)

    static func run(_ options: Options) async throws {
        let security = try BusBench.systemSecurity()
        let clients = (0..<max(1, options.clients)).map {
            BusClient(endpoint: options.bus, security: security, caller: "bench-restore-\($0)")
        }
        defer { for client in clients { client.close() } }
        let admin = clients[0]
        try await waitFor(admin)
        let setupStart = BusBench.now()
        let targets = try await populate(admin, options)
        let pairs = targets.filter { !$0.device.haPairID.isEmpty }.count / 2
        let clusterIds = Set(targets.map(\.device.clusterID).filter { !$0.isEmpty })
        let connected = targets.filter(\.device.connected).count
        print(
            String(
                format:
                    "inventory: %d devices (%d HA pairs, %d clusters of %d nodes; %d control nodes connected), ready in %.1f s",
                targets.count, pairs, clusterIds.count, options.clusterNodes, connected,
                Double(BusBench.now() - setupStart) / 1e9))
        print("\(ProcessInfo.processInfo.activeProcessorCount) cores; \(options.clients) bus clients; times in ms")

        // Warm-up at full concurrency (connections, caches), not reported.
        _ = try await phase(clients, targets, requesters: options.requesters, decisions: options.warmUp)

        // What runs with nothing asked (the bus's outbox poll every 20 ms, the coordinator's expiry sweep, heartbeats).
        let idle = CPUTimes.sample(options.watch)
        try await Task.sleep(for: .seconds(3))
        print("== idle, 3 s")
        CPUTimes.report(idle, CPUTimes.sample(options.watch), wall: 3, per: 0, "")

        // Closed loop: every requester asks again as soon as it has its answer (and ended a granted lease).
        for requesters in [1, options.requesters] {
            let decisions = requesters == 1 ? options.uncontendedDecisions : options.decisions
            let before = CPUTimes.sample(options.watch)
            let (tally, seconds) = try await phase(clients, targets, requesters: requesters, decisions: decisions)
            report("\(requesters) requester\(requesters == 1 ? "" : "s"), no pause", tally, seconds)
            CPUTimes.report(before, CPUTimes.sample(options.watch), wall: seconds, per: tally.calls, "call")
        }
        // Paced: each requester pauses a random time (exponential, mean `think`) between decisions, so that
        // the offered load is about requesters / think rather than whatever the system can take.
        for think in options.thinkMs {
            let decisions = min(options.decisions, options.pacedDecisions)
            let before = CPUTimes.sample(options.watch)
            let (tally, seconds) = try await phase(
                clients, targets, requesters: options.requesters, decisions: decisions, thinkMs: think)
            report("\(options.requesters) requesters, pausing \(think) ms on average", tally, seconds)
            CPUTimes.report(before, CPUTimes.sample(options.watch), wall: seconds, per: tally.calls, "call")
        }

        // What the coordinator asks inventory per decision (GetDevice, then GetHaPair or GetCluster), alone.
        for requesters in [1, options.requesters] {
            let count = requesters == 1 ? options.uncontendedDecisions : options.decisions
            let before = CPUTimes.sample(options.watch)
            let (lookups, lookupSeconds) = try await inventoryPhase(
                clients, targets, requesters: requesters, count: count)
            print(
                String(
                    format:
                        "== inventory lookups alone (GetDevice + GetHaPair/GetCluster), %d requester(s): %d in %.2f s = %.0f/s",
                    requesters, lookups.count, lookupSeconds, Double(lookups.count) / lookupSeconds))
            print("  lookup pair               \(summary(lookups))")
            CPUTimes.report(before, CPUTimes.sample(options.watch), wall: lookupSeconds, per: lookups.count, "lookup")
        }
    }

    // MARK: setup

    static func waitFor(_ client: BusClient) async throws {
        var request = Rampart_Restore_V1_ListLeasesRequest()
        request.limit = 1
        for _ in 0..<300 {
            let inventory = try? await client.call(
                InventoryAPI.listHaPairs,
                Rampart_Inventory_V1_ListHaPairsRequest(),
                timeout: .seconds(1))
            let restore = try? await client.call(
                RestoreAPI.listLeases, request, timeout: .seconds(1))
            if inventory != nil && restore != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LinkSigning.BenchError("inventory or restore-coordinator is not serving on the bus")
    }

    static func inventoryCall<Request, Response>(
        _ client: BusClient, _ method: RPCMethod<Request, Response>, _ request: Request
    ) async throws -> Response {
        try await client.call(method, request, timeout: timeout)
    }

    /// Registers a device, or finds it when a previous run did.
    static func register(_ client: BusClient, name: String, serial: String, ip: String) async throws {
        var device = Rampart_Inventory_V1_Device()
        device.name = name
        device.serial = serial
        device.model = "FPR-3120"
        device.platform = .physical
        device.software.version = "7.4.1"
        device.software.patch = 2
        device.networkModules = 1
        var group = Rampart_Inventory_V1_InterfaceGroup()
        group.type = "1GbE-RJ45"
        group.count = 8
        device.interfaces = [group]
        device.managementIp = ip
        device.managerID = managerId
        var request = Rampart_Inventory_V1_RegisterDeviceRequest()
        request.device = device
        do {
            let _: Rampart_Inventory_V1_DeviceResponse = try await inventoryCall(
                client, InventoryAPI.registerDevice, request)
        } catch let error as RPCError where error.code == .alreadyExists {}
    }

    static func populate(_ client: BusClient, _ options: Options) async throws -> [Target] {
        var devices: [Rampart_Inventory_V1_Device] = []
        for pair in 1...max(1, options.pairs) {
            let tag = String(format: "%02d", pair)
            let a = "lb-ha\(tag)-a", b = "lb-ha\(tag)-b"
            try await register(client, name: a, serial: "LBHA\(tag)A", ip: "10.51.\(pair).1")
            try await register(client, name: b, serial: "LBHA\(tag)B", ip: "10.51.\(pair).2")
            var create = Rampart_Inventory_V1_CreateHaPairRequest()
            create.name = "lb-ha-\(tag)"
            create.primary = a
            create.secondary = b
            let response: Rampart_Inventory_V1_HaPairResponse
            do {
                response = try await inventoryCall(client, InventoryAPI.createHaPair, create)
            } catch let error as RPCError where error.code == .alreadyExists {
                response = try await inventoryCall(
                    client, InventoryAPI.getHaPair,
                    Rampart_Inventory_V1_GetHaPairRequest.with { $0.pair = create.name })
            }
            devices += response.devices
        }
        for cluster in 1...max(1, options.clusters) {
            let tag = String(format: "%02d", cluster)
            let names = (1...max(2, options.clusterNodes)).map { "lb-cl\(tag)-n\($0)" }
            for (index, name) in names.enumerated() {
                try await register(
                    client, name: name, serial: "LBCL\(tag)N\(index + 1)", ip: "10.52.\(cluster).\(index + 1)")
            }
            var create = Rampart_Inventory_V1_CreateClusterRequest()
            create.name = "lb-cl-\(tag)"
            create.control = names[0]
            create.data = Array(names.dropFirst())
            var response: Rampart_Inventory_V1_ClusterResponse
            do {
                response = try await inventoryCall(client, InventoryAPI.createCluster, create)
            } catch let error as RPCError where error.code == .alreadyExists {
                response = try await inventoryCall(
                    client, InventoryAPI.getCluster,
                    Rampart_Inventory_V1_GetClusterRequest.with { $0.cluster = create.name })
            }
            // The first half of the clusters have their control node up (its own restore is refused, R12; its
            // data nodes may restore); the other half are wholly down (control node first, data nodes wait, R8).
            let controlUp = cluster <= options.clusters / 2
            var presence = Rampart_Inventory_V1_ReportPresenceRequest()
            presence.device = names[0]
            presence.connected = controlUp
            let _: Rampart_Inventory_V1_DeviceResponse = try await inventoryCall(
                client, InventoryAPI.reportPresence, presence)
            if controlUp {
                response = try await inventoryCall(
                    client, InventoryAPI.getCluster,
                    Rampart_Inventory_V1_GetClusterRequest.with { $0.cluster = create.name })
            }
            devices += response.devices
        }
        let createdAt = BackupManifest.timestamp(Date())
        return try devices.map { device in
            let role = backupRole(device.role)
            let manifest = BackupManifest(
                deviceId: device.id, deviceName: device.name, serial: device.serial, managerId: managerId,
                model: device.model, platform: "physical", networkModules: Int(device.networkModules),
                interfaces: device.interfaces.map { .init(type: $0.type, count: Int($0.count)) },
                software: .init(version: device.software.version, patch: Int(device.software.patch)), role: role,
                haPairId: device.haPairID, clusterId: device.clusterID, managementIp: device.managementIp,
                createdAt: createdAt)
            var request = Rampart_Restore_V1_RequestLeaseRequest()
            request.manifestJson = try manifest.encoded()
            request.archiveSha256 = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
            request.archiveFileName = "\(device.name)_\(role.fileNameTag ?? "standalone")_20261127T120000Z.tar"
            request.cliUser = "bench"
            var facts = Rampart_Restore_V1_DeviceFacts()
            facts.model = device.model
            facts.platform = "physical"
            facts.software = device.software
            facts.networkModules = device.networkModules
            facts.interfaces = Dictionary(device.interfaces.map { ($0.type, $0.count) }, uniquingKeysWith: +)
            request.facts = facts
            return Target(name: device.name, device: device, request: request)
        }
    }

    static func backupRole(_ role: Rampart_Inventory_V1_Role) -> BackupRole {
        switch role {
        case .haPrimary: .haPrimary
        case .haSecondary: .haSecondary
        case .clusterControl: .clusterControl
        case .clusterData: .clusterData
        default: .standalone
        }
    }

    // MARK: phases

    /// `requesters` tasks share `decisions` lease requests; returns what they saw and the wall time.
    static func phase(_ clients: [BusClient], _ targets: [Target], requesters: Int, decisions: Int, thinkMs: Int = 0)
        async throws -> (Tally, Double)
    {
        let next = Counter()
        let start = BusBench.now()
        let tally = await withTaskGroup(of: Tally.self) { group in
            for index in 0..<requesters {
                let client = clients[index % clients.count]
                group.addTask {
                    var mine = Tally()
                    var generator = SystemRandomNumberGenerator()
                    while true {
                        if thinkMs > 0 {
                            let pause = -Double(thinkMs) * log(1 - Double.random(in: 0..<1, using: &generator))
                            try? await Task.sleep(for: .microseconds(Int(pause * 1000)))
                        }
                        let ticket = next.value.add(1, ordering: .relaxed).oldValue
                        guard ticket < decisions else { break }
                        var request = targets.randomElement(using: &generator)!.request
                        request.facts.serial = "RPL\(index)X\(ticket)"
                        await decide(client, request, into: &mine)
                    }
                    return mine
                }
            }
            return await group.reduce(into: Tally()) { $0.merge($1) }
        }
        return (tally, Double(BusBench.now() - start) / 1e9)
    }

    /// One decision; a granted lease is ended at once (ReportStep, then ReportFailed with its token).
    static func decide(_ client: BusClient, _ request: Rampart_Restore_V1_RequestLeaseRequest, into tally: inout Tally)
        async
    {
        let t0 = BusBench.now()
        do {
            let lease = try await client.call(
                RestoreAPI.requestLease, request, timeout: timeout
            ).lease
            let elapsed = milliseconds(since: t0)
            tally.decisions.append(elapsed)
            tally.granted.append(elapsed)
            /// One follow-up call on the lease: its latency in ms, or nil (the failure counted under `label`).
            func timed<Request>(
                _ label: String, _ method: RPCMethod<Request, Rampart_Restore_V1_LeaseResponse>, _ message: Request
            ) async -> Double? {
                let start = BusBench.now()
                do {
                    _ = try await client.call(method, message, timeout: timeout)
                    return milliseconds(since: start)
                } catch {
                    tally.errors["\(label): \(error)".prefix(120).description, default: 0] += 1
                    return nil
                }
            }
            var step = Rampart_Restore_V1_ReportStepRequest()
            step.leaseID = lease.id
            step.fencingToken = lease.fencingToken
            step.step = RestoreAPI.Step.applying
            step.detail = "bus-bench"
            if let ms = await timed("ReportStep", RestoreAPI.reportStep, step) { tally.steps.append(ms) }
            var failed = Rampart_Restore_V1_ReportFailedRequest()
            failed.leaseID = lease.id
            failed.fencingToken = lease.fencingToken
            failed.reason = "bus-bench: released at once"
            if let ms = await timed("ReportFailed", RestoreAPI.reportFailed, failed) { tally.ends.append(ms) }
        } catch let error as RPCError where error.code == .failedPrecondition {
            let elapsed = milliseconds(since: t0)
            tally.decisions.append(elapsed)
            tally.refused.append(elapsed)
            tally.reasons[reason(error.message), default: 0] += 1
        } catch {
            tally.errors["RequestLease: \(error)".prefix(120).description, default: 0] += 1
        }
    }

    static func reason(_ message: String) -> String {
        if message.contains("already being restored") { return "the device itself is being restored" }
        if message.contains("its HA peer") { return "its HA peer is being restored (R7)" }
        if message.contains("one node at a time") { return "another node of its cluster is being restored (R8)" }
        if message.contains("restore the control node first") { return "its control node is not connected (R8)" }
        if message.contains("still connected") { return "the original is still connected (R12)" }
        return "other: " + message.prefix(100)
    }

    /// The coordinator's inventory lookups per decision, done by the bench itself.
    static func inventoryPhase(_ clients: [BusClient], _ targets: [Target], requesters: Int, count: Int) async throws
        -> ([Double], Double)
    {
        let next = Counter()
        let start = BusBench.now()
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for index in 0..<requesters {
                let client = clients[index % clients.count]
                group.addTask {
                    var mine: [Double] = []
                    var generator = SystemRandomNumberGenerator()
                    while next.value.add(1, ordering: .relaxed).oldValue < count {
                        let device = targets.randomElement(using: &generator)!.device
                        let t0 = BusBench.now()
                        let _: Rampart_Inventory_V1_DeviceResponse = try await inventoryCall(
                            client, InventoryAPI.getDevice,
                            Rampart_Inventory_V1_GetDeviceRequest.with { $0.device = device.id })
                        if !device.haPairID.isEmpty {
                            let _: Rampart_Inventory_V1_HaPairResponse = try await inventoryCall(
                                client, InventoryAPI.getHaPair,
                                Rampart_Inventory_V1_GetHaPairRequest.with { $0.pair = device.haPairID })
                        } else if !device.clusterID.isEmpty {
                            let _: Rampart_Inventory_V1_ClusterResponse = try await inventoryCall(
                                client, InventoryAPI.getCluster,
                                Rampart_Inventory_V1_GetClusterRequest.with { $0.cluster = device.clusterID })
                        }
                        mine.append(milliseconds(since: t0))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        return (latencies, Double(BusBench.now() - start) / 1e9)
    }

    // MARK: reporting

    static func milliseconds(since start: UInt64) -> Double { Double(BusBench.now() - start) / 1e6 }

    static func summary(_ values: [Double]) -> String {
        guard !values.isEmpty else { return "none" }
        let sorted = values.sorted()
        func at(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        let mean = sorted.reduce(0, +) / Double(sorted.count)
        return String(
            format: "p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f", at(0.5), at(0.9), at(0.99), sorted.last!, mean)
    }

    static func report(_ name: String, _ tally: Tally, _ seconds: Double) {
        print(
            String(
                format: "== %@: %d decisions in %.2f s = %.0f decisions/s (%d granted, %d refused, %d errors)", name,
                tally.decisions.count, seconds, Double(tally.decisions.count) / seconds, tally.granted.count,
                tally.refused.count, tally.errors.values.reduce(0, +)))
        print("  decision (RequestLease)   \(summary(tally.decisions))")
        print("    granted                 \(summary(tally.granted))")
        print("    refused                 \(summary(tally.refused))")
        print("  ReportStep (granted)      \(summary(tally.steps))")
        print("  ReportFailed (ends lease) \(summary(tally.ends))")
        for (reason, count) in tally.reasons.sorted(by: { $0.value > $1.value }) {
            print("  refused: \(count) × \(reason)")
        }
        for (error, count) in tally.errors.sorted(by: { $0.value > $1.value }) {
            print("  error: \(count) × \(error)")
        }
    }
}

/// CPU time (user + system) of watched processes, from /proc (Linux), to see where a phase's time goes.
enum CPUTimes {
    /// Seconds of CPU per name; "bus-bench" is this process; "postgres" adds the server's children (backends).
    static func sample(_ watch: [(name: String, pid: Int32)]) -> [(String, Double)] {
        var result: [(String, Double)] = []
        let children = watch.contains { $0.name == "postgres" } ? childrenByParent() : [:]
        for (name, pid) in watch {
            var ticks = stat(pid)?.ticks ?? 0
            if name == "postgres" { ticks += children[pid, default: []].compactMap { stat($0)?.ticks }.reduce(0, +) }
            result.append((name, Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))))
        }
        result.append(("bus-bench", Double(stat(getpid())?.ticks ?? 0) / Double(sysconf(Int32(_SC_CLK_TCK)))))
        return result
    }

    static func report(
        _ before: [(String, Double)], _ after: [(String, Double)], wall: Double, per count: Int, _ unit: String
    ) {
        guard before.count > 1 else { return }
        var parts: [String] = []
        var total = 0.0
        for ((name, start), (_, end)) in zip(before, after) {
            let used = end - start
            total += used
            parts.append(
                count > 0
                    ? String(format: "%@ %.2f s (%.2f ms/%@)", name, used, used * 1000 / Double(count), unit)
                    : String(format: "%@ %.2f s", name, used))
        }
        print("  CPU: " + parts.joined(separator: ", "))
        print(
            String(
                format: "  CPU total %.2f s over %.2f s wall = %.2f cores busy%@", total, wall, total / wall,
                count > 0 ? String(format: "; %.2f ms per %@ over %d", total * 1000 / Double(count), unit, count) : ""))
    }

    /// utime + stime and the parent of `pid`, from /proc/PID/stat.
    static func stat(_ pid: Int32) -> (ticks: Int, parent: Int32)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let parent = Int32(fields[1]), let user = Int(fields[11]), let system = Int(fields[12])
        else { return nil }
        return (user + system, parent)
    }

    static func childrenByParent() -> [Int32: [Int32]] {
        var map: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let parent = stat(pid)?.parent else { continue }
            map[parent, default: []].append(pid)
        }
        return map
    }
}
