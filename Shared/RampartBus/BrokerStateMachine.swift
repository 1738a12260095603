import Foundation
import RampartProto

/// The broker's routing logic as a value-type state machine (docs/rules.md#bus, after MDP/Majordomo):
/// messages and clock ticks in, actions out; no sockets, no clock of its own.
///
/// - Requests go to instances of the named service round-robin, never more at once than an
///   instance's announced capacity; the rest wait in a per-service queue.
/// - A service with no instance gets `UNAVAILABLE` at once; a request whose deadline passes gets
///   `DEADLINE_EXCEEDED`; an instance silent for `liveness` heartbeat intervals is dropped and the
///   requests it held get `UNAVAILABLE`.
public struct BrokerStateMachine: Sendable {
    /// Timing and limits.
    public struct Configuration: Sendable {
        /// How often the broker sends heartbeats to instances (MDP: 2.5 s).
        public var heartbeatIntervalMs: Int64 = 2500
        /// Missed heartbeat intervals after which an instance is dropped (MDP: 3).
        public var liveness: Int64 = 3
        /// Deadline given to requests that carry none.
        public var defaultDeadlineMs: Int64 = 30_000
        /// Requests a service may have waiting for an instance before new ones get `RESOURCE_EXHAUSTED`.
        public var maxQueuedPerService = 10_000

        public init(heartbeatIntervalMs: Int64 = 2500, liveness: Int64 = 3, defaultDeadlineMs: Int64 = 30_000) {
            self.heartbeatIntervalMs = heartbeatIntervalMs
            self.liveness = liveness
            self.defaultDeadlineMs = defaultDeadlineMs
        }
    }

    /// What the I/O shell must do.
    public enum Action: Equatable, Sendable {
        /// Send a request to a service instance.
        case dispatch(worker: Data, client: Data, header: Rampart_Bus_V1_RequestHeader, payload: Data)
        /// Send a reply (an instance's, or the broker's own) to a client.
        case reply(client: Data, service: String, header: Rampart_Bus_V1_ReplyHeader, payload: Data)
        /// Send a heartbeat to an instance.
        case heartbeat(worker: Data)
        /// Tell a peer the broker does not know it (it should announce itself again).
        case disconnect(worker: Data)
    }

    /// A change in which instances serve a service, for the broker's log (`takeMembershipChanges`).
    public enum MembershipChange: Equatable, Sendable {
        /// An instance announced itself (READY) and takes requests.
        case joined(service: String, instanceId: String)
        /// An instance was dropped; `reason` says why ("disconnected", "stopped answering heartbeats", …).
        case left(service: String, instanceId: String, reason: String)
        /// A registration was refused (told DISCONNECT); `reason` says why.
        case refused(service: String, instanceId: String, reason: String)
    }

    /// The reason a second instance of a device's service is refused.
    public static let secondDeviceInstanceReason =
        "another instance already serves this device: one device identity is served by one appliance at a time"

    struct RequestKey: Hashable {
        var client: Data
        var requestId: UInt64
    }

    struct Pending {
        var key: RequestKey
        var header: Rampart_Bus_V1_RequestHeader
        var payload: Data
        var deadline: Int64
    }

    struct Worker {
        var identity: Data
        var service: String
        var instanceId: String
        var capacity: Int
        var inFlight: Set<RequestKey> = []
        var expiresAt: Int64
    }

    struct InFlight {
        var worker: Data
        var service: String
        var deadline: Int64
        /// The broker already answered (deadline); a late reply only frees the slot.
        var answered = false
    }

    struct ServiceEntry {
        var workers: [Data] = []
        var next = 0
        var queue: [Pending] = []
    }

    public let configuration: Configuration
    var services: [String: ServiceEntry] = [:]
    var workers: [Data: Worker] = [:]
    var inFlight: [RequestKey: InFlight] = [:]
    /// Keys of requests waiting in any service's queue (a client's request ids are unique across services).
    var queued: Set<RequestKey> = []
    var nextHeartbeatAt: Int64 = 0
    /// Requests handed to instances since start.
    public private(set) var requestsRouted: UInt64 = 0
    /// The reason of a `.left` for an instance that said goodbye (DISCONNECT) itself.
    public static let disconnectedReason = "disconnected"
    /// Joins and leaves not yet taken by `takeMembershipChanges()`.
    public private(set) var membershipChanges: [MembershipChange] = []

    /// The joins and leaves since the last call, oldest first.
    public mutating func takeMembershipChanges() -> [MembershipChange] {
        defer { membershipChanges = [] }
        return membershipChanges
    }

    /// A broker with no instances.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    private var expiryInterval: Int64 { configuration.heartbeatIntervalMs * configuration.liveness }

    // MARK: events

    /// Handles one decoded message received at `now` (milliseconds since the epoch).
    public mutating func receive(_ message: BrokerInbound, now: Int64) -> [Action] {
        switch message {
        case .clientRequest(let client, let service, let header, let payload):
            return clientRequest(client: client, service: service, header: header, payload: payload, now: now)
        case .workerReady(let worker, let service, let info):
            return workerReady(worker, service: service, info: info, now: now)
        case .workerReply(let worker, let client, let header, let payload):
            return workerReply(worker, client: client, header: header, payload: payload, now: now)
        case .workerHeartbeat(let worker):
            guard workers[worker] != nil else { return [.disconnect(worker: worker)] }
            let expiry = now + expiryInterval
            workers[worker]?.expiresAt = expiry
            return []
        case .workerDisconnect(let worker):
            return removeWorker(worker, reason: Self.disconnectedReason)
        }
    }

    /// Sends due heartbeats, drops silent instances and answers requests whose deadline passed.
    public mutating func tick(now: Int64) -> [Action] {
        var actions: [Action] = []
        if now >= nextHeartbeatAt {
            actions += workers.keys.map { .heartbeat(worker: $0) }
            nextHeartbeatAt = now + configuration.heartbeatIntervalMs
        }
        for (identity, worker) in workers where worker.expiresAt <= now {
            actions += removeWorker(identity, reason: "stopped answering heartbeats")
        }
        for name in services.keys {
            var expired: [Pending] = []
            services[name]?.queue.removeAll { pending in
                if pending.deadline <= now { expired.append(pending); return true }
                return false
            }
            for pending in expired {
                queued.remove(pending.key)
                actions.append(
                    brokerReply(
                        pending.key, service: name, .deadlineExceeded,
                        "no instance of service '\(name)' was free to take the request before its deadline"))
            }
        }
        for (key, entry) in inFlight where !entry.answered && entry.deadline <= now {
            inFlight[key]?.answered = true
            actions.append(
                brokerReply(
                    key, service: entry.service, .deadlineExceeded,
                    "service '\(entry.service)' did not answer before the deadline"))
        }
        return actions
    }

    // MARK: clients

    private mutating func clientRequest(
        client: Data, service: String, header: Rampart_Bus_V1_RequestHeader, payload: Data, now: Int64
    ) -> [Action] {
        let key = RequestKey(client: client, requestId: header.requestID)
        guard inFlight[key] == nil, !queued.contains(key) else {
            return [brokerReply(key, service: service, .alreadyExists, "request id \(header.requestID) is already in flight")]
        }
        let deadline = header.deadlineUnixMs > 0 ? header.deadlineUnixMs : now + configuration.defaultDeadlineMs
        guard deadline > now else {
            return [brokerReply(key, service: service, .deadlineExceeded, "the request's deadline had already passed")]
        }
        guard let entry = services[service], !entry.workers.isEmpty else {
            return [
                brokerReply(key, service: service, .unavailable, "no instance of service '\(service)' is connected to the bus")
            ]
        }
        guard entry.queue.count < configuration.maxQueuedPerService else {
            return [
                brokerReply(
                    key, service: service, .resourceExhausted,
                    "service '\(service)' has \(entry.queue.count) requests waiting; try again later")
            ]
        }
        services[service]?.queue.append(Pending(key: key, header: header, payload: payload, deadline: deadline))
        queued.insert(key)
        return dispatch(service)
    }

    // MARK: service instances

    private mutating func workerReady(_ identity: Data, service: String, info: Rampart_Bus_V1_WorkerInfo, now: Int64)
        -> [Action]
    {
        if service.hasPrefix("bus.broker") {
            return [.disconnect(worker: identity)]
        }
        if let existing = workers[identity] {
            if existing.service == service {
                let expiry = now + expiryInterval
                workers[identity]?.expiresAt = expiry
                return dispatch(service)
            }
            return removeWorker(identity, reason: "announced a second service") + [.disconnect(worker: identity)]
        }
        // One identity, one device: a device's service has at most one live instance. The first stays (a
        // box that comes back while its replacement serves is the one refused); a restarted agent is admitted
        // once the broker has dropped its previous process (3 missed heartbeats).
        if service.hasPrefix(BusProtocol.deviceServicePrefix), let entry = services[service], entry.workers.contains(where: { workers[$0] != nil }) {
            membershipChanges.append(.refused(service: service, instanceId: info.instanceID, reason: Self.secondDeviceInstanceReason))
            return [.disconnect(worker: identity)]
        }
        workers[identity] = Worker(
            identity: identity, service: service, instanceId: info.instanceID,
            capacity: max(1, Int(info.capacity)), expiresAt: now + expiryInterval)
        services[service, default: ServiceEntry()].workers.append(identity)
        membershipChanges.append(.joined(service: service, instanceId: info.instanceID))
        return dispatch(service)
    }

    private mutating func workerReply(
        _ identity: Data, client: Data, header: Rampart_Bus_V1_ReplyHeader, payload: Data, now: Int64
    ) -> [Action] {
        guard workers[identity] != nil else { return [.disconnect(worker: identity)] }
        let expiry = now + expiryInterval
        workers[identity]?.expiresAt = expiry
        let key = RequestKey(client: client, requestId: header.requestID)
        guard let entry = inFlight[key], entry.worker == identity else {
            return []  // not ours: a reply to a request that instance never held
        }
        inFlight[key] = nil
        workers[identity]?.inFlight.remove(key)
        var actions: [Action] = []
        if !entry.answered {
            actions.append(.reply(client: client, service: entry.service, header: header, payload: payload))
        }
        return actions + dispatch(entry.service)
    }

    private mutating func removeWorker(_ identity: Data, reason: String) -> [Action] {
        guard let worker = workers.removeValue(forKey: identity) else { return [] }
        membershipChanges.append(.left(service: worker.service, instanceId: worker.instanceId, reason: reason))
        var actions: [Action] = []
        for key in worker.inFlight {
            guard let entry = inFlight.removeValue(forKey: key), !entry.answered else { continue }
            actions.append(
                brokerReply(
                    key, service: worker.service, .unavailable,
                    "instance \(worker.instanceId) of service '\(worker.service)' \(reason) before answering"))
        }
        guard var entry = services[worker.service] else { return actions }
        entry.workers.removeAll { $0 == identity }
        if entry.workers.isEmpty {
            for pending in entry.queue {
                queued.remove(pending.key)
                actions.append(
                    brokerReply(
                        pending.key, service: worker.service, .unavailable,
                        "the last instance of service '\(worker.service)' \(reason)"))
            }
            services[worker.service] = nil
        } else {
            entry.next %= entry.workers.count
            services[worker.service] = entry
        }
        return actions
    }

    /// Hands queued requests of `service` to instances with free capacity, round-robin.
    private mutating func dispatch(_ service: String) -> [Action] {
        guard var entry = services[service] else { return [] }
        var actions: [Action] = []
        while !entry.queue.isEmpty {
            guard let identity = nextFreeWorker(&entry) else { break }
            let pending = entry.queue.removeFirst()
            queued.remove(pending.key)
            workers[identity]?.inFlight.insert(pending.key)
            inFlight[pending.key] = InFlight(worker: identity, service: service, deadline: pending.deadline)
            requestsRouted += 1
            actions.append(
                .dispatch(worker: identity, client: pending.key.client, header: pending.header, payload: pending.payload))
        }
        services[service] = entry
        return actions
    }

    private func nextFreeWorker(_ entry: inout ServiceEntry) -> Data? {
        let count = entry.workers.count
        for offset in 0..<count {
            let index = (entry.next + offset) % count
            let identity = entry.workers[index]
            if let worker = workers[identity], worker.inFlight.count < worker.capacity {
                entry.next = (index + 1) % count
                return identity
            }
        }
        return nil
    }

    private func brokerReply(
        _ key: RequestKey, service: String, _ status: Rampart_Bus_V1_StatusCode, _ message: String
    ) -> Action {
        .reply(
            client: key.client, service: service,
            header: FrameCodec.replyHeader(requestId: key.requestId, status: status, message: message, answeredBy: "broker"),
            payload: Data())
    }

    // MARK: introspection

    /// What the broker knows, for `Broker/Status` and tests: the services whose name starts with
    /// `servicePrefix` ("" = all).
    public func status(servicePrefix: String = "") -> Rampart_Bus_V1_BrokerStatusResponse {
        var response = Rampart_Bus_V1_BrokerStatusResponse()
        response.requestsRouted = requestsRouted
        response.heartbeatIntervalMs = configuration.heartbeatIntervalMs
        response.liveness = configuration.liveness
        response.services = services.keys.filter { $0.hasPrefix(servicePrefix) }.sorted().map { name in
            let entry = services[name]!
            var status = Rampart_Bus_V1_BrokerStatusResponse.ServiceStatus()
            status.name = name
            status.instances = entry.workers.compactMap { workers[$0]?.instanceId }
            status.queued = UInt32(entry.queue.count)
            status.inFlight = UInt32(entry.workers.reduce(0) { $0 + (workers[$1]?.inFlight.count ?? 0) })
            return status
        }
        return response
    }
}
