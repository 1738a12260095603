import Foundation
import RampartAPI
import RampartBus
import RampartJSON
import RampartProto
import RampartRPC
import RampartTesting
import SwiftProtobuf
import Testing
import ZeroMQ

/// End to end over real processes: PostgreSQL, `bus`, `inventory` instances and the `rampart` CLI.
@Suite("System: bus, inventory and CLI as processes", .serialized)
struct SystemTests {
    @Test("Inventory: a standalone device, an HA pair and a 3-node cluster registered through the CLI, served by both instances")
    func registersTheSmallFleetOnTwoInstances() async throws {
        try await withSystem(inventories: 2) { system in
            try await registerSmallFleet(system)

            let devices = try await system.rampart("devices", "list", "--output", "json")
            #expect(devices.exitCode == 0)
            let list = try OperatorJSON.decode(Rampart_Inventory_V1_ListDevicesResponse.self, from: devices.stdout)
            let roles = Dictionary(uniqueKeysWithValues: list.devices.map { ($0.name, $0.role) })
            #expect(
                roles == [
                    "fw-edge": .standalone, "fw-ha-1": .haPrimary, "fw-ha-2": .haSecondary, "node-1": .clusterControl,
                    "node-2": .clusterData, "node-3": .clusterData,
                ])
            let table = try await system.rampart("clusters", "list")
            #expect(table.stdout.contains("cl-west") && table.stdout.contains("node-2,node-3"), "\(table)")

            // Both instances answer: the broker spreads requests round-robin.
            let client = system.client()
            defer { client.close() }
            var answeredBy = Set<String>()
            for _ in 0..<10 {
                let reply = await client.send(
                    service: InventoryAPI.serviceName, method: InventoryAPI.listDevices.name,
                    payload: Data(), deadline: unixMillis() + 5000)
                #expect(reply.header.status == .ok)
                answeredBy.insert(reply.header.answeredBy)
            }
            #expect(answeredBy.count == 2, "answered by \(answeredBy)")

            let stuck = await system.stop()
            #expect(stuck.isEmpty, "not shut down gracefully by SIGTERM within 5 s: \(stuck)")
        }
    }

    @Test("Events: every change appears once, in order; a subscriber that went away replays from its last seq")
    func eventsInOrderAndReplayAfterDisconnect() async throws {
        try await withSystem(followLiveness: false) { system in
            try await registerSmallFleet(system)
            // 3 + 1 + 3 + 1 changes so far.
            let first = try await collectEvents(system, since: 0, count: 5)
            #expect(first.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(first[3].topic == "inventory.ha_pair.created")

            // Away: more changes happen.
            for name in ["fw-edge", "fw-ha-1"] {
                #expect(try await system.rampart("devices", "presence", name, "connected").exitCode == 0)
            }
            #expect(try await system.rampart("devices", "out-of-date", "node-2").exitCode == 0)

            let rest = try await collectEvents(system, since: first.last!.seq, count: 6)
            let all = first + rest
            #expect(all.map(\.seq) == Array(1...11), "each event exactly once, gap-free")
            #expect(
                all.map(\.topic) == [
                    "inventory.device.registered", "inventory.device.registered", "inventory.device.registered",
                    "inventory.ha_pair.created", "inventory.device.registered", "inventory.device.registered",
                    "inventory.device.registered", "inventory.cluster.created", "inventory.device.connected",
                    "inventory.device.connected", "inventory.device.out_of_date",
                ])
            #expect(all[8].attributes["device_name"] == "fw-edge")

            // The CLI's tail replays the same, filtered by topic.
            let tail = try await system.rampart("events", "tail", "--since", "0", "--topic", "inventory.cluster.", "--count", "1", "--follow", "--timeout", "30")
            #expect(tail.exitCode == 0 && tail.stdout.contains("inventory.cluster.created"), "\(tail)")
        }
    }

    @Test("Events: tail prints what the journal holds and exits (the last ones, or after --since); --follow waits at most --timeout for --count")
    func tailPrintsWhatExists() async throws {
        try await withSystem(followLiveness: false) { system in
            try await registerSmallFleet(system)
            _ = try await collectEvents(system, since: 0, count: 8)  // 8 changes are in the journal
            func seqs(_ result: ChildProcess.Result) throws -> [UInt64] {
                try result.stdout.split(separator: "\n").map { try OperatorJSON.decode(Rampart_Bus_V1_Event.self, from: String($0)).seq }
            }
            // Fewer than asked: what exists, then exit 0 (it used to wait for events that never came).
            let some = try await system.rampart("events", "tail", "--since", "0", "--count", "30", "--output", "json")
            let someSeqs = try seqs(some)
            #expect(some.exitCode == 0 && someSeqs == Array(1...8), "\(some)")
            // Without --since: the last ones.
            let last = try await system.rampart("events", "tail", "--count", "3", "--output", "json")
            let lastSeqs = try seqs(last)
            #expect(last.exitCode == 0 && lastSeqs == [6, 7, 8], "\(last)")
            let lastDevices = try await system.rampart(
                "events", "tail", "--count", "2", "--topic", "inventory.device.", "--output", "json")
            let lastDeviceSeqs = try seqs(lastDevices)
            #expect(lastDeviceSeqs == [6, 7], "\(lastDevices)")
            // --follow: waits for new ones, at most --timeout; not all came: exit 5 after printing what did.
            let waited = try await system.rampart(
                "events", "tail", "--since", "6", "--count", "5", "--follow", "--timeout", "2", "--output", "json")
            let waitedSeqs = try seqs(waited)
            #expect(waited.exitCode == 5 && waitedSeqs == [7, 8] && waited.stderr.contains("2 of 5 events"), "\(waited)")
        }
    }

    @Test("R6: each installation makes its own manager id at first start, keeps it across restarts, gives it to devices registered without one, and shows it")
    func managerIdPerInstallation() async throws {
        func managerId(_ system: RunningSystem) async throws -> String {
            let client = system.client()
            defer { client.close() }
            let manager: Rampart_Inventory_V1_ManagerResponse = try await client.call(
                InventoryAPI.getManager,
                Rampart_Inventory_V1_GetManagerRequest(), idempotent: true)
            return manager.managerID
        }
        try await withSystem(inventories: 2) { first in
            try await withSystem { second in
                let a = try await managerId(first)
                let b = try await managerId(second)
                // Two default installations never accept each other's backups by accident.
                #expect(a.hasPrefix("rampart-") && b.hasPrefix("rampart-") && a != b, "\(a) \(b)")
                #expect(a != "rampart-manager" && b != "rampart-manager")
                // Both instances of the first installation say the same; a restarted inventory keeps it.
                #expect(try await managerId(first) == a)
                try second.start("inventory")
                try await second.waitUntilServing(InventoryAPI.serviceName, instances: 2)
                for _ in 0..<4 { #expect(try await managerId(second) == b) }

                let registered = try await first.rampart(deviceArguments("fw-r6", serial: "R6A1", ip: "10.6.0.1"))
                #expect(registered.exitCode == 0, "\(registered)")
                let shown = try await first.rampart("devices", "show", "fw-r6", "--output", "json")
                #expect(try OperatorJSON.decode(Rampart_Inventory_V1_Device.self, from: shown.stdout).managerID == a, "\(shown)")
                let status = try await first.rampart("bus", "status")
                #expect(status.stdout.contains("manager: \(a)"), "\(status)")
            }
        }
    }

    @Test("R12: a presence report that arrives late never overrides a newer one; an operator's report always applies")
    func presenceReportsInOrder() async throws {
        try await withSystem(followLiveness: false) { system in
            let register = try await system.rampart(deviceArguments("fw-late", serial: "LATE1", ip: "10.0.9.1"))
            #expect(register.exitCode == 0, "\(register)")
            let client = system.client()
            defer { client.close() }
            func report(_ connected: Bool, _ sequence: UInt64, by reporter: String = "agent-1") async throws -> Bool {
                var request = Rampart_Inventory_V1_ReportPresenceRequest()
                request.device = "fw-late"
                request.connected = connected
                request.sequence = sequence
                request.reporter = reporter
                let response: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                    InventoryAPI.reportPresence, request)
                return response.device.connected
            }
            #expect(try await report(true, 200), "the first numbered report applies")
            #expect(try await report(false, 100), "a lower number came late: still connected")
            #expect(try await report(false, 200) == true, "the same number again (a retry) changes nothing")
            #expect(try await report(false, 300) == false, "a higher number applies")
            #expect(try await report(true, 250) == false, "a late 'connected' cannot undo the newer 'disconnected'")
            // An operator's report (sequence 0) always applies and restarts the order.
            let operatorReport = try await system.rampart("devices", "presence", "fw-late", "connected")
            #expect(operatorReport.exitCode == 0, "\(operatorReport)")
            #expect(try await report(false, 5) == false, "after an operator's report the agent's next report applies")
            // Another reporter (a restarted agent, a replacement appliance whose clock is behind) is heard
            // at once, whatever its numbers; from then on its own numbers order its reports.
            #expect(try await report(true, 1, by: "agent-2") == true, "a new reporter's first report applies")
            #expect(try await report(false, 2, by: "agent-2") == false)
            #expect(try await report(true, 1, by: "agent-2") == false, "its own late report does not")
            var tooLarge = Rampart_Inventory_V1_ReportPresenceRequest()
            tooLarge.device = "fw-late"
            tooLarge.sequence = UInt64(Int64.max) + 1
            await #expect(throws: RPCError.self) {
                let _: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                    InventoryAPI.reportPresence, tooLarge)
            }
            // Only applied reports are events: registered, connected (200), disconnected (300), connected
            // (operator), disconnected (5), connected (agent-2, 1), disconnected (agent-2, 2).
            let events = try await collectEvents(system, since: 0, count: 7)
            #expect(
                events.map(\.topic) == [
                    "inventory.device.registered", "inventory.device.connected", "inventory.device.disconnected",
                    "inventory.device.connected", "inventory.device.disconnected", "inventory.device.connected",
                    "inventory.device.disconnected",
                ])
        }
    }

    @Test("Bus: a service with no instance answers UNAVAILABLE from the broker, not at the deadline")
    func unavailableAtOnce() async throws {
        try await withSystem(inventories: 0) { system in
            let client = system.client()
            defer { client.close() }
            let reply = await client.send(
                service: "no-such-service", method: "x.Y/Z", payload: Data(), deadline: unixMillis() + 30_000)
            #expect(reply.header.status == .unavailable)
            #expect(reply.header.answeredBy == "broker")

            let cli = try await system.rampart("devices", "list")
            #expect(cli.exitCode == 5)
            #expect(cli.stderr.contains("UNAVAILABLE") && cli.stderr.contains("inventory"), "\(cli)")
        }
    }

    @Test("CLI: with no bus at all, a clear message and exit code 5 by the deadline, never a hang")
    func cliWithoutBus() async throws {
        let result = try await ChildProcess.run(
            Binaries.path("rampart"), ["devices", "list", "--bus", "tcp://127.0.0.1:\(FreePort.next())", "--timeout", "1", "--insecure-plain"])
        #expect(result.exitCode == 5)
        #expect(result.stderr.contains("is the bus running"), "\(result)")
    }

    @Test("Bus: kill -9 of one inventory instance leaves the other serving")
    func survivesKilledInstance() async throws {
        try await withSystem(inventories: 2) { system in
            try await registerSmallFleet(system)
            let victim = try system.start("inventory")
            try await system.waitUntilServing(InventoryAPI.serviceName, instances: 3)
            victim.kill9()
            let client = system.client()
            defer { client.close() }
            for _ in 0..<30 {
                let list: Rampart_Inventory_V1_ListDevicesResponse = try await client.call(
                    InventoryAPI.listDevices,
                    Rampart_Inventory_V1_ListDevicesRequest(), timeout: .seconds(5), idempotent: true)
                #expect(list.devices.count == 6)
            }
            try await system.waitUntilServing(InventoryAPI.serviceName, instances: 2)
        }
    }

    @Test("Bus: 10,000 random and truncated messages crash neither the broker nor a service; good requests still answered")
    func survivesGarbage() async throws {
        try await withSystem { system in
            let endpoint = system.busEndpoint
            let security = system.security(as: "admin")  // garbage from an admitted key reaches the broker's decoder
            try await onOwnThread {
                var rng = SplitMix64(seed: 0x5EED)
                let socket = try ZMQSocket(.dealer)
                defer { socket.close() }
                try security.apply(to: socket)
                try socket.connect(endpoint)
                let valid = FrameCodec.clientRequest(
                    service: InventoryAPI.serviceName,
                    header: {
                        var header = Rampart_Bus_V1_RequestHeader()
                        header.requestID = 1
                        header.method = InventoryAPI.registerDevice.name
                        return header
                    }(), payload: Data([0x0A, 0x02, 0x12, 0x00]))
                for index in 0..<10_000 {
                    var frames: [Data]
                    switch index % 4 {
                    case 0:  // random frames
                        frames = (0..<Int.random(in: 1...6, using: &rng)).map { _ in rng.bytes(Int.random(in: 0...40, using: &rng)) }
                    case 1:  // a valid request cut short: its payload frame missing, or its head cut
                        frames = [valid[0].prefix(Int.random(in: 0...valid[0].count, using: &rng))]
                    case 2:  // a valid header to the inventory, random payload
                        frames = valid
                        frames[1] = rng.bytes(Int.random(in: 0...64, using: &rng))
                    default:  // worker commands from nowhere, with bytes after them
                        frames = [BusProtocol.workerTag + Data([UInt8.random(in: 1...5, using: &rng)]), rng.bytes(8)]
                    }
                    if index % 4 == 2 {
                        var header = Rampart_Bus_V1_RequestHeader()
                        header.requestID = UInt64(index + 10)
                        header.method = [InventoryAPI.registerDevice.name, InventoryAPI.updateDevice.name,
                                         "no.such/Method"][index % 3]
                        header.deadlineUnixMs = unixMillis() + 5000
                        frames[0] = FrameCodec.clientRequest(service: InventoryAPI.serviceName, header: header, payload: Data())[0]
                    }
                    try socket.send(frames)
                }
            }

            #expect(system.bus.isRunning)
            let good = try await system.rampart("devices", "register", "after-garbage", "--serial", "AG1", "--model", "FPR-1010",
                                                "--platform", "physical", "--software", "7.4.1", "--management-ip", "10.9.9.9")
            #expect(good.exitCode == 0, "\(good)")
            let status = try await system.rampart("bus", "status")
            #expect(status.exitCode == 0 && status.stdout.contains("inventory"), "\(status)")
            // The garbage did reach the broker (over CURVE, from an admitted key) and was counted there.
            let counted = try await system.rampart("bus", "status", "--output", "json")
            let broker = try OperatorJSON.decode(Rampart_Bus_V1_BrokerStatusResponse.self, from: counted.stdout)
            #expect(broker.malformedFrames >= 1000, "\(counted)")
        }
    }
}
