import Foundation
import Logging
import RampartAPI
import RampartProto
import ServiceLifecycle
import Synchronization
import ZeroMQ

/// The broker's I/O shell: one ROUTER socket on one thread, feeding `BrokerStateMachine` and
/// carrying out its actions. Answers `bus.broker` (`rampart.bus.v1.Broker/Status`) itself.
public final class Broker: Service, Sendable {
    private let endpoints: [String]
    private let security: BrokerSecurity
    private let configuration: BrokerStateMachine.Configuration
    private let logger: Logger
    private let auditor: Auditor?
    private let control = LoopControl()
    private let bound = Mutex<String?>(nil)
    private let deviceCheck: DeviceCheck?
    /// Verdicts of device checks, handed from their tasks to the routing thread.
    private let verdicts = Mutex<[(worker: Data, refusal: String?)]>([])

    /// A registration of `device/<deviceId>`: who registers it, and the serial the box says it has.
    public struct DeviceClaim: Sendable {
        public var deviceId: String
        /// The name of the registering key (nil in plain mode).
        public var keyName: String?
        public var serial: String
        public var instanceId: String

        public init(deviceId: String, keyName: String?, serial: String, instanceId: String) {
            self.deviceId = deviceId
            self.keyName = keyName
            self.serial = serial
            self.instanceId = instanceId
        }
    }

    /// Confirms a device claim: nil admits it, a string is the reason it is refused (`DeviceClaim.refusal`
    /// against inventory's record, in the bus process).
    public typealias DeviceCheck = @Sendable (DeviceClaim) async -> String?

    /// A device registration waiting for its check.
    private struct PendingDevice {
        var service: String
        var info: Rampart_Bus_V1_WorkerInfo
        var identity: CallerIdentity?
    }
    /// At most this many device registrations wait for their check at once; more are refused (the agent
    /// asks again later) rather than held, so a flood of registrations costs the broker bounded memory.
    static let maxPendingDevices = 10_000
    /// When this broker was made (`Broker/Status` says it: a restarted broker knows no instance yet).
    private let startedAt = unixMillis()

    /// A broker that will bind every one of `endpoints` ("tcp://127.0.0.1:7400", "inproc://broker";
    /// a tcp port `*` picks a free one). Clients and instances may connect to any of them.
    /// With `.curve`, tcp peers must complete a CURVE handshake with a key the ZAP handler admits
    /// (start a `ZAPHandler` first), and each request reaches its service with the caller's identity.
    /// `auditor` records what the broker itself refuses (revoked keys, services a key may not serve).
    /// `deviceCheck` confirms each registration of a device's service before the instance takes requests
    /// (nil: none, e.g. a broker without inventory in unit tests).
    public init(
        endpoints: [String], security: BrokerSecurity, configuration: BrokerStateMachine.Configuration = .init(),
        auditor: Auditor? = nil, deviceCheck: DeviceCheck? = nil, logger: Logger
    ) {
        precondition(!endpoints.isEmpty, "a broker needs an endpoint")
        self.deviceCheck = deviceCheck
        self.endpoints = endpoints
        self.security = security
        self.configuration = configuration
        self.logger = logger
        self.auditor = auditor
    }

    /// Hands a refusal to the auditor without holding up the routing thread.
    private func recordRefusal(key: String, identity: CallerIdentity?, service: String, method: String, message: String) {
        guard let auditor else { return }
        let event = AuditEvent(
            time: Date(), caller: identity ?? CallerIdentity(key: key, name: "", role: .viewer), service: "bus",
            method: method, subject: service, outcome: .permissionDenied, message: message, details: [:],
            keyRevoked: identity == nil)
        Task { await auditor(event) }
    }

    /// Tells `worker` to go, logged and audited: its registration of `service` is refused for `reason`.
    /// `key`: the connection's key when it has no identity any more (revoked).
    private func refuse(
        _ worker: Data, service: String, info: Rampart_Bus_V1_WorkerInfo, identity: CallerIdentity?, key: String? = nil,
        reason: String, on socket: ZMQSocket
    ) {
        let key = identity?.key ?? key ?? ""
        logger.warning(
            "service registration refused",
            metadata: [
                "service": "\(service)", "instance": "\(info.instanceID)", "key": "\(key.prefix(8))",
                "name": "\(identity?.name ?? "-")", "serial": "\(info.serial)", "reason": "\(reason)",
            ])
        perform([.disconnect(worker: worker)], on: socket)
        recordRefusal(key: key, identity: identity, service: service, method: "serve \(service)", message: reason)
    }

    /// Hands a registration the broker's own checks admitted to the state machine. A device's service
    /// already served by a live instance refuses the newcomer there (one identity, one device); that
    /// refusal is audited like the others (the state machine logs it as a membership change).
    private func register(
        _ worker: Data, service: String, info: Rampart_Bus_V1_WorkerInfo, identity: CallerIdentity?, now: Int64,
        state: inout BrokerStateMachine, on socket: ZMQSocket
    ) {
        let actions = state.receive(.workerReady(worker: worker, service: service, info: info), now: now)
        perform(actions, on: socket)
        let refused = state.workers[worker] == nil
            && actions.contains { if case .disconnect(let told) = $0 { told == worker } else { false } }
        if refused, service.hasPrefix(BusProtocol.deviceServicePrefix) {
            recordRefusal(
                key: identity?.key ?? "", identity: identity, service: service, method: "serve \(service)",
                message: BrokerStateMachine.secondDeviceInstanceReason)
        }
    }

    /// The first endpoint as actually bound, once `run()` has bound it.
    public var boundEndpoint: String? { bound.withLock { $0 } }

    /// Routes until cancelled or gracefully shut down.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await runOnDedicatedThread(name: "bus-broker", control: control) { [self] in try loop() }
        } onGracefulShutdown: { [control] in
            control.stop()
        }
    }

    /// Asks the broker to stop.
    public func stop() { control.stop() }

    private func loop() throws {
        try control.wakeup.ensureUsable()
        let socket = try ZMQSocket(.router)
        try socket.setMaxMessageSize(BusProtocol.maxMessageSize)
        try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
        if case .curve(let secretKey, _) = security {
            try socket.makeCurveServer(secretKey: secretKey, domain: BrokerSecurity.busDomain)
        }
        var actual = ""
        for endpoint in endpoints {
            try socket.bind(endpoint)
            if actual.isEmpty { actual = socket.lastEndpoint }
        }
        bound.withLock { $0 = actual }
        logger.info("broker listening", metadata: ["endpoint": "\(actual)"])

        var state = BrokerStateMachine(configuration: configuration)
        var pendingDevices: [Data: PendingDevice] = [:]
        var malformed: UInt64 = 0
        var poller = ZMQPoller()
        let socketIndex = poller.add(socket)
        let wakeupIndex = poller.add(fileDescriptor: control.wakeup.readDescriptor)
        let tickMs: Int64 = 20
        var lastTick: Int64 = 0

        while !control.isStopRequested {
            try poller.poll(timeoutMilliseconds: Int(tickMs))
            if poller.isReadable(wakeupIndex) { control.wakeup.drain() }  // no byte, no read
            if poller.isReadable(socketIndex) {
                // Take what is there now, but bounded, so ticks still happen under load.
                let authorized = security.authorized?.current
                for _ in 0..<1000 {
                    guard let (frames, userId) = try socket.receiveWithUserId(dontWait: true) else { break }
                    let now = unixMillis()
                    // nil: plain mode, or a peer inside this process (inproc never goes through ZAP).
                    var identity: CallerIdentity?
                    var revokedKey: String?
                    if let authorized, let userId {
                        identity = authorized.identity(forKey: userId)
                        if identity == nil { revokedKey = userId }
                    }
                    switch FrameCodec.decodeAtBroker(frames) {
                    case .success(.clientRequest(let client, let service, var header, let payload)):
                        if let revokedKey {
                            let reply = FrameCodec.replyHeader(
                                requestId: header.requestID, status: .permissionDenied,
                                message: "this bus key (\(revokedKey.prefix(8))…) is no longer authorized", answeredBy: "broker")
                            perform([.reply(client: client, service: service, header: reply, payload: Data())], on: socket)
                            recordRefusal(key: revokedKey, identity: nil, service: service, method: header.method, message: reply.message)
                            continue
                        }
                        if let identity { header.caller = identity.proto } else { header.clearCaller() }
                        if service == BusProtocol.brokerService, let identity, identity.role == .device {
                            // A device reaches only what a device needs (P8): the bus's status lists every
                            // device of the fleet, and no device needs it.
                            let reply = FrameCodec.replyHeader(
                                requestId: header.requestID, status: .permissionDenied,
                                message: "a device key ('\(identity.name)') may not read the bus's status", answeredBy: "broker")
                            perform([.reply(client: client, service: service, header: reply, payload: Data())], on: socket)
                            recordRefusal(key: identity.key, identity: identity, service: service, method: header.method, message: reply.message)
                        } else if service == BusProtocol.brokerService {
                            let request = (try? Rampart_Bus_V1_BrokerStatusRequest(serializedBytes: payload)) ?? .init()
                            var status = state.status(servicePrefix: request.servicePrefix)
                            status.malformedFrames = malformed
                            status.startedUnixMs = startedAt
                            perform(answerBrokerCall(client: client, header: header, status: status), on: socket)
                        } else {
                            perform(
                                state.receive(.clientRequest(client: client, service: service, header: header, payload: payload), now: now),
                                on: socket)
                        }
                    case .success(.workerReady(let worker, let service, let info)):
                        if let refusal = revokedKey != nil ? "the key is no longer authorized" : identity.flatMap({ Self.refusal(of: $0, serving: service) }) {
                            refuse(
                                worker, service: service, info: info, identity: identity, key: revokedKey, reason: refusal,
                                on: socket)
                            continue
                        }
                        if let deviceCheck, service.hasPrefix(BusProtocol.deviceServicePrefix), state.workers[worker] == nil {
                            // Not routable until inventory confirms the key and serial are this device's.
                            if pendingDevices[worker] == nil, pendingDevices.count >= Self.maxPendingDevices {
                                refuse(
                                    worker, service: service, info: info, identity: identity,
                                    reason: "too many device registrations are being checked; ask again later", on: socket)
                            } else if pendingDevices[worker] == nil {
                                pendingDevices[worker] = PendingDevice(service: service, info: info, identity: identity)
                                let claim = DeviceClaim(
                                    deviceId: String(service.dropFirst(BusProtocol.deviceServicePrefix.count)),
                                    keyName: identity?.name, serial: info.serial, instanceId: info.instanceID)
                                Task { [self] in
                                    let refusal = await deviceCheck(claim)
                                    verdicts.withLock { $0.append((worker, refusal)) }
                                    control.wakeup.signal()
                                }
                            }
                            continue
                        }
                        register(worker, service: service, info: info, identity: identity, now: now, state: &state, on: socket)
                    case .success(let message) where pendingDevices[message.peer] != nil:
                        // A device registration being checked: its heartbeats wait; its goodbye ends the wait.
                        if case .workerDisconnect = message { pendingDevices[message.peer] = nil }
                    case .success(let message):
                        if revokedKey != nil {
                            if case .workerDisconnect = message {} else {
                                perform([.disconnect(worker: message.peer)], on: socket)
                            }
                            continue
                        }
                        perform(state.receive(message, now: now), on: socket)
                    case .failure(let problem):
                        malformed += 1
                        if malformed <= 10 || malformed % 1000 == 0 {
                            logger.warning(
                                "malformed message dropped",
                                metadata: ["reason": "\(problem.reason)", "count": "\(malformed)"])
                        }
                        if let to = problem.replyTo {
                            let header = FrameCodec.replyHeader(
                                requestId: to.requestId, status: .invalidArgument,
                                message: "malformed request: \(problem.reason)", answeredBy: "broker")
                            perform([.reply(client: to.client, service: to.service, header: header, payload: Data())], on: socket)
                        }
                    }
                }
            }
            let decided: [(worker: Data, refusal: String?)] = verdicts.withLock { verdicts in
                let taken = verdicts
                verdicts = []
                return taken
            }
            for verdict in decided {
                let worker = verdict.worker
                guard let pending = pendingDevices.removeValue(forKey: worker) else { continue }  // it left meanwhile
                if let refusal = verdict.refusal {
                    refuse(worker, service: pending.service, info: pending.info, identity: pending.identity, reason: refusal, on: socket)
                } else {
                    register(
                        worker, service: pending.service, info: pending.info, identity: pending.identity, now: unixMillis(),
                        state: &state, on: socket)
                }
            }
            let now = unixMillis()
            if now - lastTick >= tickMs {
                lastTick = now
                perform(state.tick(now: now), on: socket)
            }
            if !state.membershipChanges.isEmpty { log(state.takeMembershipChanges()) }
        }
        logger.info("broker stopped")
    }

    /// Why `identity` may not register as an instance of `service`, or nil when it may: services may
    /// serve anything but devices' own services; a device only `device/…` services.
    public static func refusal(of identity: CallerIdentity, serving service: String) -> String? {
        switch identity.role {
        case .service:
            return service.hasPrefix(BusProtocol.deviceServicePrefix) ? "a service key may not serve a device's service" : nil
        case .device:
            return service.hasPrefix(BusProtocol.deviceServicePrefix) ? nil : "a device key may serve only its device's service (device/…)"
        case .admin, .operator, .viewer:
            return "role '\(identity.role.rawValue)' may not serve services"
        }
    }

    private func answerBrokerCall(client: Data, header: Rampart_Bus_V1_RequestHeader, status: Rampart_Bus_V1_BrokerStatusResponse)
        -> [BrokerStateMachine.Action]
    {
        let reply: Rampart_Bus_V1_ReplyHeader
        var payload = Data()
        if header.method == BrokerAPI.status.name {
            reply = FrameCodec.replyHeader(requestId: header.requestID, status: .ok, message: "", answeredBy: "broker")
            payload = FrameCodec.serialize(status)
        } else {
            reply = FrameCodec.replyHeader(
                requestId: header.requestID, status: .unimplemented,
                message: "the broker has no method '\(header.method)'", answeredBy: "broker")
        }
        return [.reply(client: client, service: BusProtocol.brokerService, header: reply, payload: payload)]
    }

    /// Instances joining and leaving: an operator's first question when a service "has no instance".
    private func log(_ changes: [BrokerStateMachine.MembershipChange]) {
        for change in changes {
            switch change {
            case .joined(let service, let instanceId):
                logger.info("instance joined", metadata: ["service": "\(service)", "instance": "\(instanceId)"])
            case .left(let service, let instanceId, let reason):
                // Leaving on its own is routine; being dropped (silent, or announcing a second service) is not.
                logger.log(
                    level: reason == BrokerStateMachine.disconnectedReason ? .info : .warning, "instance left",
                    metadata: ["service": "\(service)", "instance": "\(instanceId)", "reason": "\(reason)"])
            case .refused(let service, let instanceId, let reason):
                logger.warning(
                    "service registration refused", metadata: ["service": "\(service)", "instance": "\(instanceId)", "reason": "\(reason)"])
            }
        }
    }

    private func perform(_ actions: [BrokerStateMachine.Action], on socket: ZMQSocket) {
        for action in actions {
            let frames: [Data]
            switch action {
            case .dispatch(let worker, let client, let header, let payload):
                frames = FrameCodec.requestToWorker(worker, client: client, header: header, payload: payload)
            case .reply(let client, _, let header, let payload):
                frames = FrameCodec.replyToClient(client: client, header: header, payload: payload)
            case .heartbeat(let worker):
                frames = FrameCodec.signalToWorker(worker, .heartbeat)
            case .disconnect(let worker):
                frames = FrameCodec.signalToWorker(worker, .disconnect)
            }
            do {
                try socket.send(frames, dontWait: true)
            } catch {
                logger.debug("send failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// How the broker admits peers.
public enum BrokerSecurity: Sendable {
    /// The ZAP domain of the broker's socket.
    public static let busDomain = "rampart.bus"
    /// The ZAP domain of the event publisher's socket.
    public static let eventsDomain = "rampart.events"
    /// No authentication (loopback only; `--insecure-plain`).
    case plain
    /// CURVE with the broker's secret key; peers admitted by the ZAP handler from `authorized`.
    case curve(secretKey: String, authorized: AuthorizedKeysSource)

    /// The secret key of the bus's CURVE server sockets, or nil in plain mode.
    public var secretKey: String? {
        if case .curve(let secretKey, _) = self { return secretKey }
        return nil
    }

    /// What a service instance inside the bus process (over inproc, never CURVE) treats its callers as:
    /// authenticated when the bus is.
    public var instanceSecurity: BusSecurity {
        switch self {
        case .plain: .plain
        case .curve: .inproc
        }
    }

    public var authorized: AuthorizedKeysSource? {
        if case .curve(_, let authorized) = self { return authorized }
        return nil
    }
}

extension BrokerInbound {
    /// The routing id of whoever sent it.
    var peer: Data {
        switch self {
        case .clientRequest(let client, _, _, _): client
        case .workerReady(let worker, _, _), .workerReply(let worker, _, _, _), .workerHeartbeat(let worker),
            .workerDisconnect(let worker):
            worker
        }
    }
}

extension Broker.DeviceClaim {
    /// Why this claim may not serve the device inventory records under `deviceId` with `name` and
    /// `serial`, or nil when it may (rule P8): the id must be the device's id (not a name resolving to
    /// it), the key the device's own (its name; none in plain mode), and the serial the one inventory
    /// holds — a box whose serial inventory no longer has is the original of a device since restored
    /// onto a replacement, or another appliance.
    public func refusal(deviceId: String, name: String, serial: String) -> String? {
        guard deviceId == self.deviceId else {
            return "'\(self.deviceId)' is not a device id (it names device \(deviceId))"
        }
        if let keyName, keyName != name {
            return "the key of device '\(keyName)' may serve only its own device, not \(name) (\(deviceId))"
        }
        guard !self.serial.isEmpty else {
            return "the registration names no serial: an agent serving a device says which appliance it is"
        }
        guard self.serial == serial else {
            return "this box has serial \(self.serial), but inventory knows \(name) as serial \(serial) "
                + "(the device was restored onto a replacement, or this is another appliance): one identity, one device"
        }
        return nil
    }
}
