import Foundation
import Logging
import RampartAPI
import RampartBus
import RampartJSON
import RampartProto
import RampartRPC
import RampartTesting
import Testing
import ZeroMQ

/// P6 and P7 over real processes: CURVE on every tcp endpoint, keys admitted by the bus's
/// ZAP handler, roles enforced by each service (docs/security.md).
@Suite("Security: CURVE, ZAP and roles over real processes (P6, P7)", .serialized)
struct SecurityTests {
    /// A key with the system's broker key that the bus has never admitted.
    static func strangerKey(_ system: RunningSystem) throws -> String {
        let keys = try #require(system.keys)
        let broker = try BusKeyFile.load(keys.brokerKeyPath)
        let path = system.logDirectory + "/mallory.key"
        try BusKeyFile(name: "mallory", role: "admin", keys: try CurveKeyPair.generate(), brokerKey: broker.keys.publicKey)
            .write(to: path)
        return path
    }

    /// The audit log as `rampart audit` (an admin) shows it, filtered by `arguments`.
    static func audit(_ system: RunningSystem, _ arguments: String...) async throws -> [Rampart_Audit_V1_AuditEntry] {
        let result = try await system.rampart(["audit"] + arguments + ["--output", "json"])
        #expect(result.exitCode == 0, "\(result)")
        return try OperatorJSON.decode(Rampart_Audit_V1_ListAuditResponse.self, from: result.stdout).entries
    }

    static func waitUntil(_ timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Heartbeats stamped after `after` (ms since the epoch) among the messages `socket` has received since
    /// last asked, and the other messages (events, older heartbeats apart).
    static func take(_ socket: ZMQSocket, after: Int64) throws -> (fresh: Int, other: Int) {
        var taken = (fresh: 0, other: 0)
        while let frames = try socket.receive(dontWait: true) {
            if frames.count == 2, frames[0] == Data(BusProtocol.eventHeartbeatTopic.utf8),
                let beat = try? Rampart_Bus_V1_PublisherHeartbeat(serializedBytes: frames[1])
            {
                if beat.timeUnixMs > after { taken.fresh += 1 }
            } else {
                taken.other += 1
            }
        }
        return taken
    }

    @Test("P6: an unknown key gets no data at all (calls and events); a plain client gets nothing either")
    func unknownKeyGetsNothing() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        try system.start("inventory")
        try await system.waitUntilServing(InventoryAPI.serviceName)
        let stranger = try Self.strangerKey(system)
        var environment = system.environment
        environment["RAMPART_KEY"] = stranger
        let denied = try await ChildProcess.run(
            Binaries.path("rampart"), ["devices", "list", "--timeout", "1"], environment: environment)
        #expect(denied.exitCode == 5, "\(denied)")
        #expect(denied.stderr.contains("nothing has been heard from the bus"), "\(denied)")
        #expect(denied.stdout.isEmpty)

        // Raw sockets: a stranger's CURVE DEALER and a plain one send a well-formed request and a
        // stranger's SUB waits for events while an admin registers a device: not one byte comes back.
        let request = FrameCodec.clientRequest(
            service: InventoryAPI.serviceName, header: {
                var header = Rampart_Bus_V1_RequestHeader()
                header.requestID = 1
                header.method = InventoryAPI.listDevices.name
                return header
            }(), payload: Data())
        let strangerKey = try BusKeyFile.load(stranger)
        let curveDealer = try ZMQSocket(.dealer)
        try BusSecurity.curve(strangerKey).apply(to: curveDealer)
        try curveDealer.connect(system.busEndpoint)
        let plainDealer = try ZMQSocket(.dealer)
        try plainDealer.connect(system.busEndpoint)
        let sub = try ZMQSocket(.sub)
        try sub.subscribe("")
        try BusSecurity.curve(strangerKey).apply(to: sub)
        try sub.connect(system.eventsEndpoint)
        // Their twins with the admin's key, connected and asking at the same moment: what the twins get, the
        // strangers would get too if the bus let them in.
        let twinDealer = try ZMQSocket(.dealer)
        try system.security(as: "admin").apply(to: twinDealer)
        try twinDealer.connect(system.busEndpoint)
        let twinSub = try ZMQSocket(.sub)
        try twinSub.subscribe("")
        try system.security(as: "admin").apply(to: twinSub)
        try twinSub.connect(system.eventsEndpoint)
        try curveDealer.send(request, dontWait: true)
        try plainDealer.send(request, dontWait: true)
        try twinDealer.send(request, dontWait: true)
        let admin = system.client()
        defer { admin.close() }
        let registered = try await system.rampart(
            "devices", "register", "fw-sec-1", "--serial", "SEC0001", "--model", "FPR-3120", "--platform", "physical",
            "--software", "7.4.1", "--management-ip", "10.9.0.1")
        #expect(registered.exitCode == 0, "\(registered)")
        // The registration's event goes out before the first heartbeat stamped after it is sent, or with the
        // next one: once the twin SUB has two such heartbeats (a second apart) and the twin DEALER its answer,
        // every stranger has had its chance to receive something.
        let registeredAt = Int64(Date().timeIntervalSince1970 * 1000)
        var twin = (answered: false, heartbeats: 0)
        var received = 0
        let seen = try await Self.waitUntil(.seconds(30)) {
            if try twinDealer.receive(dontWait: true) != nil { twin.answered = true }
            twin.heartbeats += try Self.take(twinSub, after: registeredAt).fresh
            for socket in [curveDealer, plainDealer, sub] { while try socket.receive(dontWait: true) != nil { received += 1 } }
            return twin.answered && twin.heartbeats >= 2
        }
        #expect(seen, "the admin's twins get their answer and the heartbeats: \(twin)")
        for socket in [curveDealer, plainDealer, sub] { while try socket.receive(dontWait: true) != nil { received += 1 } }
        #expect(received == 0)
        // The admin's own event subscription sees the registration (the stream itself works).
        let tail = try await system.rampart("events", "tail", "--since", "0", "--count", "1", "--topic", "inventory.device.registered", "--follow", "--timeout", "30")
        #expect(tail.exitCode == 0 && tail.stdout.contains("fw-sec-1"), "\(tail)")
        #expect(system.bus.log.contains("bus connection refused"), "the refusal is logged")
    }

    @Test("P6: a key revoked while connected is refused from its next request on; a key added works at once")
    func revokeWhileConnected() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        try system.start("inventory")
        try await system.waitUntilServing(InventoryAPI.serviceName)
        let keys = try #require(system.keys)
        try keys.add([(.operator, "temp")])
        let client = system.client(as: "temp")
        defer { client.close() }
        let _: Rampart_Inventory_V1_ListDevicesResponse = try await client.call(
            InventoryAPI.listDevices,
            Rampart_Inventory_V1_ListDevicesRequest())
        let temp = try #require(try keys.list().first { $0.name == "temp" }).key
        #expect(try keys.revoke(name: "temp") == 1)
        let refused = try await Self.waitUntil {
            do {
                let _: Rampart_Inventory_V1_ListDevicesResponse = try await client.call(
                    InventoryAPI.listDevices,
                    Rampart_Inventory_V1_ListDevicesRequest())
                return false
            } catch let error as RPCError {
                return error.code == .permissionDenied && error.message.contains("no longer authorized")
            }
        }
        #expect(refused, "the same connection is refused once the key is revoked")
        // The broker records the refusal: the key, no name or role any more (P9).
        var recorded: [Rampart_Audit_V1_AuditEntry] = []
        #expect(
            try await Self.waitUntil {
                recorded = try await Self.audit(system, "--refused", "--caller", temp)
                return !recorded.isEmpty
            }, "the revoked key's refusal is in the audit log")
        #expect(recorded.allSatisfy { $0.service == "bus" && $0.callerRole.isEmpty && $0.details["key"] == "revoked" }, "\(recorded)")
    }

    @Test("P6: a key revoked while subscribed to events gets nothing more; other subscribers go on")
    func revokedSubscriberCutOff() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        try await system.waitUntilServing(BusProtocol.journalService)
        let keys = try #require(system.keys)
        try keys.add([(.viewer, "watcher")])
        func subscriber(as name: String) throws -> ZMQSocket {
            let socket = try ZMQSocket(.sub)
            try socket.subscribe("")
            try system.security(as: name).apply(to: socket)
            try socket.connect(system.eventsEndpoint)
            return socket
        }
        let watcher = try subscriber(as: "watcher")
        let viewer = try subscriber(as: "viewer")
        defer {
            watcher.close()
            viewer.close()
        }
        // Heartbeats come once a second, to every subscriber the bus has let in.
        let start = Int64(Date().timeIntervalSince1970 * 1000)
        var before = (watcher: 0, viewer: 0)
        let admitted = try await Self.waitUntil(.seconds(20)) {
            before.watcher += try Self.take(watcher, after: start).fresh
            before.viewer += try Self.take(viewer, after: start).fresh
            return before.watcher >= 1 && before.viewer >= 1
        }
        #expect(admitted, "both receive heartbeats while admitted: \(before)")

        #expect(try keys.revoke(name: "watcher") == 1)
        #expect(try await Self.waitUntil { system.bus.log.contains("event stream restarted") }, "\(system.bus.log)")
        // The old stream's socket was closed before that line was logged: a heartbeat stamped after now comes
        // from the new one, which the others reconnect to and the revoked watcher must never get into (what
        // the old stream sent before is stamped earlier and does not count). Three such heartbeats to the
        // viewer are two seconds of the new stream that the watcher would have had too.
        let restarted = Int64(Date().timeIntervalSince1970 * 1000)
        var after = (watcher: 0, viewer: 0)
        let resumed = try await Self.waitUntil(.seconds(20)) {
            let seen = try Self.take(watcher, after: restarted)
            after.watcher += seen.fresh + seen.other
            after.viewer += try Self.take(viewer, after: restarted).fresh
            return after.viewer >= 3
        }
        #expect(resumed, "the others reconnect and go on: \(after)")
        after.watcher += try Self.take(watcher, after: restarted).fresh
        #expect(after.watcher == 0, "the revoked key gets nothing more: \(after)")
    }

    @Test("P7: a viewer reads but changes nothing, an operator cannot administer inventory, each refusal is PERMISSION_DENIED (exit 4)")
    func rolesOverProcesses() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        try system.start("inventory")
        try await system.waitUntilServing(InventoryAPI.serviceName)
        let register = [
            "devices", "register", "fw-sec-2", "--serial", "SEC0002", "--model", "FPR-3120", "--platform", "physical",
            "--software", "7.4.1", "--management-ip", "10.9.0.2",
        ]
        for name in ["viewer", "operator"] {
            let result = try await system.rampart(as: name, register)
            #expect(result.exitCode == 4, "\(name): \(result)")
            #expect(result.stderr.contains("PERMISSION_DENIED") && result.stderr.contains("role '\(name)'"), "\(result)")
        }
        let listed = try await system.rampart(as: "viewer", ["devices", "list", "--output", "json"])
        #expect(listed.exitCode == 0, "\(listed)")
        #expect(!listed.stdout.contains("fw-sec-2"), "nothing was registered")
        let admin = try await system.rampart(as: "admin", register)
        #expect(admin.exitCode == 0, "\(admin)")

        // Each refusal and the admin's registration are in the audit log, with the key that made them
        // (P9). Only admins and viewers read it.
        let keys = try #require(system.keys)
        let entries = try await Self.audit(system, "--method", InventoryAPI.registerDevice.name)
        for name in ["viewer", "operator", "admin"] {
            let entry = try #require(entries.first { $0.callerName == name }, "\(name): \(entries)")
            let key = try #require(try keys.list().first { $0.name == name }).key
            #expect(entry.callerKey == key && entry.callerRole == name && entry.service == "inventory", "\(entry)")
            #expect(entry.outcome == (name == "admin" ? .ok : .permissionDenied), "\(entry)")
        }
        #expect(entries.first { $0.callerName == "admin" }?.subject.isEmpty == false, "the new device's id")
        let viewerReads = try await system.rampart(as: "viewer", ["audit", "--output", "json"])
        #expect(viewerReads.exitCode == 0, "\(viewerReads)")
        let operatorReads = try await system.rampart(as: "operator", ["audit"])
        #expect(operatorReads.exitCode == 4, "an operator may not read the audit log: \(operatorReads)")

        // A device key acts only for its own device.
        try system.addDeviceKeys(["fw-sec-3"])
        let device = system.client(as: "fw-sec-3")
        defer { device.close() }
        var presence = Rampart_Inventory_V1_ReportPresenceRequest()
        presence.device = "fw-sec-2"
        presence.connected = true
        await #expect(throws: RPCError.self) {
            let _: Rampart_Inventory_V1_DeviceResponse = try await device.call(
                InventoryAPI.reportPresence, presence)
        }
        let shown = try await system.rampart("devices", "show", "fw-sec-2", "--output", "json")
        #expect(!shown.stdout.contains("\"connected\":true") && !shown.stdout.contains("\"connected\": true"), "\(shown)")
    }

    @Test("P7: only service keys register services: an operator's key serving inventory is refused by the broker")
    func registrationNeedsServiceKey() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        let keys = try #require(system.keys)
        var environment = system.environment
        environment["RAMPART_KEY"] = keys.keyPath(role: .operator, name: "operator")
        let rogue = try ChildProcess(
            Binaries.path("inventory"), ["--instance-id", "rogue"], environment: environment,
            logPath: system.logDirectory + "/rogue.log")
        defer { rogue.stopInBackground() }
        #expect(try await Self.waitUntil { system.bus.log.contains("service registration refused") })
        let status = try await system.rampart("bus", "status", "--output", "json")
        #expect(!status.stdout.contains("rogue"), "\(status)")
        var recorded: [Rampart_Audit_V1_AuditEntry] = []
        #expect(
            try await Self.waitUntil {
                recorded = try await Self.audit(system, "--refused", "--caller", "operator")
                return !recorded.isEmpty
            }, "the broker's refusal is in the audit log")
        #expect(recorded.first?.method == "serve inventory" && recorded.first?.service == "bus", "\(recorded)")
    }

    @Test("P6: a key file others may read is refused at start, naming the fix")
    func worldReadableKeyRefused() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        let keys = try #require(system.keys)
        let path = keys.keyPath(role: .service, name: "inventory")
        chmod(path, 0o644)
        let result = try await ChildProcess.run(Binaries.path("inventory"), [], environment: system.environment)
        #expect(result.exitCode != 0)
        #expect((result.stderr + result.stdout).contains("chmod 600"), "\(result)")
    }

    @Test("P6: plain mode only when asked for, only on loopback, and said loudly")
    func plainOnlyOnLoopback() async throws {
        let database = try TestDatabase.create()
        let exposed = try await ChildProcess.run(
            Binaries.path("bus"),
            ["--insecure-plain", "--listen", "tcp://0.0.0.0:\(FreePort.next())", "--publish", "tcp://127.0.0.1:\(FreePort.next())",
             "--database", database])
        #expect(exposed.exitCode != 0)
        #expect((exposed.stderr + exposed.stdout).contains("only on loopback"), "\(exposed)")
        let unasked = try await ChildProcess.run(
            Binaries.path("bus"), ["--listen", "tcp://127.0.0.1:\(FreePort.next())", "--database", database],
            environment: ["RAMPART_KEYS": "", "RAMPART_INSECURE_PLAIN": ""])
        #expect(unasked.exitCode != 0)
        #expect((unasked.stderr + unasked.stdout).contains("no broker key"), "\(unasked)")

        let system = try RunningSystem(plain: true)
        defer { system.stopInBackground() }
        try system.start("inventory")
        try await system.waitUntilServing(InventoryAPI.serviceName)
        #expect(system.bus.log.contains("INSECURE"), "\(system.bus.log)")
        let listed = try await system.rampart("devices", "list")
        #expect(listed.exitCode == 0, "\(listed)")
    }
}

/// `rampart keys` as an operator uses it (P6): the files, the list, adding, revoking, refusals.
@Suite("Security: rampart keys init, add, list, revoke (P6)")
struct KeysCommandTests {
    @Test("P6: rampart keys makes 0600 key files, lists them, adds and revokes; refusals exit 4, a missing key 3")
    func keysCommand() async throws {
        let dir = NSTemporaryDirectory() + "rampart-keys-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rampart = Binaries.path("rampart")
        let made = try await ChildProcess.run(rampart, ["keys", "init", dir, "--operator", "alice:operator", "--device", "fw-1"])
        #expect(made.exitCode == 0, "\(made)")
        for path in ["broker.key", "services/inventory.key", "operators/alice.key", "devices/fw-1.key"] {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: dir + "/" + path)[.posixPermissions] as? Int)
            #expect(mode == 0o600, "\(path): \(String(mode, radix: 8))")
        }

        struct Row: Decodable, Equatable { var role: String; var name: String }
        func listed() async throws -> [Row] {
            let result = try await ChildProcess.run(rampart, ["keys", "list", dir, "--output", "json"])
            #expect(result.exitCode == 0, "\(result)")
            return try JSONDecoder().decode([Row].self, from: Data(result.stdout.utf8))
        }
        let before = try await listed()
        #expect(before.contains(Row(role: "operator", name: "alice")) && before.contains(Row(role: "device", name: "fw-1")))
        #expect(before.contains(Row(role: "service", name: "restore-coordinator")))
        #expect(!before.contains { $0.name == "broker" }, "the broker's own key is not a client key")

        let added = try await ChildProcess.run(rampart, ["keys", "add", dir, "--role", "viewer", "bob"])
        #expect(added.exitCode == 0 && added.stdout.contains("operators/bob.key"), "\(added)")
        #expect(try await listed().contains(Row(role: "viewer", name: "bob")))
        let again = try await ChildProcess.run(rampart, ["keys", "add", dir, "--role", "viewer", "bob"])
        #expect(again.exitCode == 4 && again.stderr.contains("bob"), "a name taken: \(again)")
        let badName = try await ChildProcess.run(rampart, ["keys", "add", dir, "--role", "device", "../etc"])
        #expect(badName.exitCode == 4 && badName.stderr.contains("not a valid key name"), "\(badName)")
        let twice = try await ChildProcess.run(rampart, ["keys", "init", dir])
        #expect(twice.exitCode == 4 && twice.stderr.contains("already"), "\(twice)")
        let badRole = try await ChildProcess.run(rampart, ["keys", "add", dir, "--role", "root", "eve"])
        #expect(badRole.exitCode == 64, "\(badRole)")

        let revoked = try await ChildProcess.run(rampart, ["keys", "revoke", dir, "bob"])
        #expect(revoked.exitCode == 0, "\(revoked)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/operators/bob.key"), "the revoked key's file is gone")
        #expect(!(try await listed()).contains { $0.name == "bob" })
        let missing = try await ChildProcess.run(rampart, ["keys", "revoke", dir, "bob"])
        #expect(missing.exitCode == 3, "\(missing)")
    }
}
