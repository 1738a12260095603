import Foundation
import Logging
import RampartBus
import RampartProto
import RampartRPC
import Synchronization
import Testing
import ZeroMQ

private let export = RPCMethod<Rampart_Bus_V1_ReplayRequest, Rampart_Bus_V1_ReplayResponse>(
    service: "links", name: "rampart.test.v1.Links/Export", policy: .operate)
private let read = RPCMethod<Rampart_Bus_V1_ReplayRequest, Rampart_Bus_V1_ReplayResponse>(
    service: "links", name: "rampart.test.v1.Links/List", policy: .read)
private let presence = RPCMethod<Rampart_Bus_V1_ReplayRequest, Rampart_Bus_V1_ReplayResponse>(
    service: "links", name: "rampart.test.v1.Inventory/ReportPresence",
    policy: MethodPolicy(roles: MethodPolicy.deviceOwn.roles, audited: false))
private let exportMethod = export.name
private let readMethod = read.name
private let presenceMethod = presence.name

/// Audit events a router hands to its auditor, kept for inspection.
private final class AuditRecorder: Sendable {
    let events = Mutex<[AuditEvent]>([])
    var all: [AuditEvent] { events.withLock { $0 } }
    var auditor: Auditor { { event in self.events.withLock { $0.append(event) } } }
}

/// How many times handlers ran.
private final class Runs: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// A router with an operator method (audited), a read method, and a device-own method; `ran` counts
/// handler runs.
private func router(sink: AuditRecorder, ran: Runs) -> ServiceRouter {
    var router = ServiceRouter(
        serviceName: "links",
        policy: AccessPolicy([export, read, presence]))
    router.auditor = sink.auditor
    router.register(export) { (request: Rampart_Bus_V1_ReplayRequest, context) -> Rampart_Bus_V1_ReplayResponse in
        ran.add()
        context.audit.subject = request.topicPrefix
        context.audit.note("count", "\(request.limit)")
        return Rampart_Bus_V1_ReplayResponse()
    }
    router.register(read) { (_: Rampart_Bus_V1_ReplayRequest, context) -> Rampart_Bus_V1_ReplayResponse in
        ran.add()
        var response = Rampart_Bus_V1_ReplayResponse()
        var event = Rampart_Bus_V1_Event()
        event.source = "\(context.identity.name)|\(context.identity.role.rawValue)"
        response.events = [event]
        return response
    }
    router.register(presence) { (request: Rampart_Bus_V1_ReplayRequest, context) -> Rampart_Bus_V1_ReplayResponse in
        try context.requireOwnDevice(request.topicPrefix)
        ran.add()
        return Rampart_Bus_V1_ReplayResponse()
    }
    return router
}

private func header(_ method: String, as role: BusRole?, name: String = "alice") -> Rampart_Bus_V1_RequestHeader {
    var header = requestHeader(id: 9, method: method, metadata: ["caller": "self-declared"])
    if let role { header.caller = CallerIdentity(key: String(repeating: "k", count: 40), name: name, role: role).proto }
    return header
}

private func payload(_ prefix: String, limit: UInt32 = 3) -> Data {
    var request = Rampart_Bus_V1_ReplayRequest()
    request.topicPrefix = prefix
    request.limit = limit
    return FrameCodec.serialize(request)
}

@Suite("Access: roles per method, device-own calls, audit records (P7, P8, P9)")
struct AccessTests {
    let logger = Logger(label: "access-tests")

    @Test("P7: a role outside the method's policy gets PERMISSION_DENIED, the handler never runs, the refusal is recorded")
    func refusedRole() async {
        let sink = AuditRecorder()
        let ran = Runs()
        let (reply, body) = await router(sink: sink, ran: ran).handle(
            header: header(exportMethod, as: .viewer, name: "vera"), payload: payload("fw-1"), instanceId: "l",
            logger: logger, authenticated: true)
        #expect(reply.status == .permissionDenied)
        #expect(reply.message.contains("viewer") && reply.message.contains("vera") && reply.message.contains(exportMethod))
        #expect(body.isEmpty)
        #expect(ran.value == 0)
        let events = sink.all
        #expect(events.count == 1)
        #expect(events.first?.outcome == Rampart_Bus_V1_StatusCode.permissionDenied)
        #expect(events.first?.caller.name == "vera")
        #expect(events.first?.caller.key == String(repeating: "k", count: 40))
        #expect(events.first?.method == exportMethod)
        #expect(events.first?.service == "links")
    }

    @Test("P7, P9: an allowed role runs; an audited method is recorded once with OK, its subject and notes")
    func allowedAndAudited() async {
        let sink = AuditRecorder()
        let ran = Runs()
        let router = router(sink: sink, ran: ran)
        let (reply, _) = await router.handle(
            header: header(exportMethod, as: .operator), payload: payload("fw-9", limit: 4), instanceId: "l", logger: logger,
            authenticated: true)
        #expect(reply.status == .ok)
        #expect(ran.value == 1)
        #expect(sink.all.count == 1)
        #expect(sink.all.first?.outcome == Rampart_Bus_V1_StatusCode.ok)
        #expect(sink.all.first?.subject == "fw-9")
        #expect(sink.all.first?.details == ["count": "4"])
        // A read-only method that viewers may call is not audited.
        let (read, _) = await router.handle(
            header: header(readMethod, as: .viewer), payload: payload(""), instanceId: "l", logger: logger,
            authenticated: true)
        #expect(read.status == .ok)
        #expect(sink.all.count == 1)
    }

    @Test("P7, P8: devices may not read; a device acts only for its own device, and the refusal is recorded")
    func deviceOwn() async throws {
        let sink = AuditRecorder()
        let ran = Runs()
        let router = router(sink: sink, ran: ran)
        let (read, _) = await router.handle(
            header: header(readMethod, as: .device, name: "fw-1"), payload: payload(""), instanceId: "l", logger: logger,
            authenticated: true)
        #expect(read.status == .permissionDenied)
        let (own, _) = await router.handle(
            header: header(presenceMethod, as: .device, name: "fw-1"), payload: payload("fw-1"), instanceId: "l",
            logger: logger, authenticated: true)
        #expect(own.status == .ok)
        let (other, _) = await router.handle(
            header: header(presenceMethod, as: .device, name: "fw-1"), payload: payload("fw-2"), instanceId: "l",
            logger: logger, authenticated: true)
        #expect(other.status == .permissionDenied)
        #expect(other.message.contains("fw-1") && other.message.contains("fw-2"))
        #expect(ran.value == 1)
        // Both refusals are recorded although the method is not audited; the allowed call is not.
        #expect(sink.all.map(\.outcome) == [Rampart_Bus_V1_StatusCode.permissionDenied, .permissionDenied])
        // A service acts for any device.
        let (service, _) = await router.handle(
            header: header(presenceMethod, as: .service, name: "restore-coordinator"), payload: payload("fw-2"),
            instanceId: "l", logger: logger, authenticated: true)
        #expect(service.status == .ok)
    }

    @Test("identity: the broker's caller is trusted; without one an authenticated instance sees the bus itself, a plain one an admin under the self-declared name")
    func identityWithoutCaller() async throws {
        let sink = AuditRecorder()
        let ran = Runs()
        let router = router(sink: sink, ran: ran)
        for (authenticated, expected) in [(true, "bus|service"), (false, "self-declared|admin")] {
            let (reply, body) = await router.handle(
                header: header(readMethod, as: nil), payload: payload(""), instanceId: "l", logger: logger,
                authenticated: authenticated)
            #expect(reply.status == .ok)
            #expect(try Rampart_Bus_V1_ReplayResponse(serializedBytes: body).events.first?.source == expected)
        }
        let (reply, body) = await router.handle(
            header: header(readMethod, as: .viewer, name: "vera"), payload: payload(""), instanceId: "l", logger: logger,
            authenticated: true)
        #expect(reply.status == .ok)
        #expect(try Rampart_Bus_V1_ReplayResponse(serializedBytes: body).events.first?.source == "vera|viewer")
    }

    @Test("P7, P8: only service keys serve services, only device keys serve device/…, people serve nothing")
    func registrationRoles() {
        func identity(_ role: BusRole) -> CallerIdentity { CallerIdentity(key: "k", name: "n", role: role) }
        #expect(Broker.refusal(of: identity(.service), serving: "inventory") == nil)
        #expect(Broker.refusal(of: identity(.service), serving: "device/42") != nil)
        #expect(Broker.refusal(of: identity(.device), serving: "device/42") == nil)
        #expect(Broker.refusal(of: identity(.device), serving: "inventory") != nil)
        for role in [BusRole.admin, .operator, .viewer] {
            #expect(Broker.refusal(of: identity(role), serving: "inventory") != nil)
        }
    }
}

@Suite("Bus keys: files, modes, the authorized list, ZAP decisions (P6)")
struct BusKeyTests {
    private func folder() throws -> KeyFolder {
        try KeyFolder.initialize(
            at: NSTemporaryDirectory() + "rampart-keys-\(UUID().uuidString.prefix(8))",
            operators: [("admin", .admin), ("vera", .viewer)], devices: ["fw-1"])
    }

    @Test("P6: init makes the broker, service, operator and device keys, every file 0600 and folder 0700")
    func initialize() throws {
        let keys = try folder()
        let entries = try keys.list()
        #expect(Set(entries.map(\.name)) == Set(KeyFolder.services + ["admin", "vera", "fw-1"]))
        #expect(entries.first { $0.name == "vera" }?.role == .viewer)
        let broker = try BusKeyFile.load(keys.brokerKeyPath)
        #expect(broker.role == "broker" && broker.brokerKey == nil)
        for entry in entries {
            let file = try BusKeyFile.load(keys.keyPath(role: entry.role, name: entry.name))
            #expect(file.keys.publicKey == entry.key)
            #expect(file.brokerKey == broker.keys.publicKey)
            #expect(file.role == entry.role.rawValue)
        }
        let manager = FileManager.default
        for path in try manager.subpathsOfDirectory(atPath: keys.path) {
            let mode = try manager.attributesOfItem(atPath: keys.path + "/" + path)[.posixPermissions] as? Int
            let isFolder = (try? manager.contentsOfDirectory(atPath: keys.path + "/" + path)) != nil
            #expect(mode == (isFolder ? 0o700 : 0o600), "\(path)")
        }
        #expect(throws: BusKeyError.self) { try KeyFolder.initialize(at: keys.path) }
    }

    @Test("P6: a key file others may read is refused, naming the fix")
    func worldReadable() throws {
        let keys = try folder()
        let path = keys.keyPath(role: .admin, name: "admin")
        chmod(path, 0o644)
        do {
            _ = try BusKeyFile.load(path)
            Issue.record("a 0644 key file was accepted")
        } catch let error as BusKeyError {
            #expect(error.description.contains("chmod 600"))
        }
        chmod(path, 0o640)
        #expect(throws: BusKeyError.self) { try BusKeyFile.load(path) }
        chmod(path, 0o600)
        #expect(throws: Never.self) { try BusKeyFile.load(path) }
    }

    @Test("a key file whose public key is not its secret key's, or with a broken key, is refused")
    func mismatchedKeys() throws {
        let one = try CurveKeyPair.generate()
        let two = try CurveKeyPair.generate()
        let text = "name = a\nrole = admin\npublic-key = \(two.publicKey)\nsecret-key = \(one.secretKey)\nbroker-key = \(one.publicKey)\n"
        #expect(throws: BusKeyError.self) { try BusKeyFile.parse(text, path: "x") }
        let broken = text.replacingOccurrences(of: two.publicKey, with: String(two.publicKey.dropLast()) + "\"")
        #expect(throws: BusKeyError.self) { try BusKeyFile.parse(broken, path: "x") }
        let good = BusKeyFile(name: "a", role: "admin", keys: one, brokerKey: two.publicKey)
        #expect(try BusKeyFile.parse(good.text, path: "x") == good)
        #expect(throws: BusKeyError.self) { try BusKeyFile.parse(good.text.replacingOccurrences(of: "role = admin", with: "role = root"), path: "x") }
    }

    @Test("P6: the bus admits only listed keys over CURVE, and no device on the event stream; a revoked key is out at the next reload")
    func admission() throws {
        let keys = try folder()
        let source = try AuthorizedKeysSource(path: keys.authorizedKeysPath, recheckMs: 0, logger: Logger(label: "t"))
        let admin = try BusKeyFile.load(keys.keyPath(role: .admin, name: "admin")).keys.publicKey
        let device = try BusKeyFile.load(keys.keyPath(role: .device, name: "fw-1")).keys.publicKey
        let stranger = try CurveKeyPair.generate().publicKey
        func ask(_ key: String?, _ domain: String = BrokerSecurity.busDomain, _ mechanism: String = "CURVE") -> ZAPHandler.Decision {
            BusAdmission.decide(
                ZAPHandler.Request(domain: domain, address: "127.0.0.1", mechanism: mechanism, publicKey: key), keys: source.current)
        }
        #expect(ask(admin) == .admit(userId: admin))
        #expect(ask(device) == .admit(userId: device))
        #expect(ask(admin, BrokerSecurity.eventsDomain) == .admit(userId: admin))
        #expect(ask(device, BrokerSecurity.eventsDomain) == .refuse(reason: "device keys may not subscribe to events"))
        #expect(ask(stranger) == .refuse(reason: "unknown key"))
        #expect(ask(nil, BrokerSecurity.busDomain, "NULL") == .refuse(reason: "this bus requires CURVE"))
        #expect(ask(admin, "other") != .admit(userId: admin))
        #expect(try keys.revoke(name: "admin") == 1)
        #expect(ask(admin) == .refuse(reason: "unknown key"))
        #expect(!FileManager.default.fileExists(atPath: keys.keyPath(role: .admin, name: "admin")))
        try keys.add([(.operator, "olga")])
        let olga = try BusKeyFile.load(keys.keyPath(role: .operator, name: "olga")).keys.publicKey
        #expect(ask(olga) == .admit(userId: olga))
        #expect(source.current.identity(forKey: olga) == CallerIdentity(key: olga, name: "olga", role: .operator))
        #expect(throws: BusKeyError.self) { try keys.add([(.operator, "olga")]) }
        #expect(throws: BusKeyError.self) { try keys.add([(.operator, "../etc")]) }
    }

    @Test("the ZAP handler answers RFC 27 requests: 200 with the user id, 400 for a refusal, 500 for garbage")
    func zapFrames() throws {
        let key = try CurveKeyPair.generate()
        let handler = ZAPHandler(logger: Logger(label: "t")) { request in
            request.publicKey == key.publicKey ? .admit(userId: "u-1") : .refuse(reason: "no")
        }
        let request = [Data("1.0"), Data("7"), Data(BrokerSecurity.busDomain), Data("10.0.0.1"), Data(), Data("CURVE")]
        let admitted = handler.answer(request + [Data(Curve.decode(key.publicKey)!)])
        #expect(admitted.map { String(decoding: $0, as: UTF8.self) } == ["1.0", "7", "200", "OK", "u-1", ""])
        let refused = handler.answer(request + [Data(Curve.decode(try CurveKeyPair.generate().publicKey)!)])
        #expect(String(decoding: refused[2], as: UTF8.self) == "400")
        #expect(String(decoding: handler.answer([Data("2.0"), Data("1")])[2], as: UTF8.self) == "500")
        #expect(String(decoding: handler.answer(request + [Data([1, 2, 3])])[2], as: UTF8.self) == "400")
    }

    @Test("plain mode is for loopback only")
    func loopback() {
        for endpoint in ["tcp://127.0.0.1:7400", "tcp://127.9.9.9:1", "tcp://localhost:7400", "tcp://[::1]:7400", "ipc:///tmp/x", "inproc://b"] {
            #expect(BusEndpoints.isLoopback(endpoint), "\(endpoint)")
        }
        for endpoint in ["tcp://0.0.0.0:7400", "tcp://*:7400", "tcp://10.0.0.1:7400", "tcp://eth0:7400", "tcp://127.0.0.1.evil:1", "tcp://[::]:1"] {
            #expect(!BusEndpoints.isLoopback(endpoint), "\(endpoint)")
        }
    }
}
