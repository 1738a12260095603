import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC
import ServiceLifecycle

/// What the broker's view of live device services means for the presence inventory records: the pure
/// part of `PresenceWatcher`, fed one poll of the broker's status at a time.
///
/// Presence follows liveness (docs/decisions.md, "Presence follows the broker's liveness"): the broker
/// drops a device's instance after `liveness` missed heartbeats (or at once when the agent says goodbye);
/// inventory, told by the next poll, marks the device disconnected. Rules:
/// - A device live at the previous poll of the same broker and absent now was dropped by the broker:
///   disconnected at once.
/// - A device recorded connected that this tracker never saw live under this broker (inventory or the
///   broker just started, or an agent that reported itself before registering its service) is given one
///   expiry (heartbeat interval × liveness) to appear, and no decision is taken before the broker itself
///   has been up that long (every live instance re-registers with a restarted broker within it).
/// - A device that appears between two polls of the same broker is connected. A device that is live
///   but recorded disconnected with no such change (an operator's override, `rampart devices presence`)
///   is left as recorded until its next change.
public struct LivenessTracker: Sendable {
    /// Changes to record.
    public struct Changes: Equatable, Sendable {
        public var disconnected: [String] = []
        public var connected: [String] = []
    }

    private var brokerStartedAt: Int64?
    private var live: Set<String>?
    private var absentSince: [String: Int64] = [:]

    public init() {}

    /// One poll at `now` (ms): the device ids with a live instance, the broker's start time and expiry
    /// (ms), and each device's recorded presence (id → connected).
    public mutating func observe(
        live current: Set<String>, brokerStartedAt started: Int64, expiryMs: Int64, recorded: [String: Bool], now: Int64
    ) -> Changes {
        if brokerStartedAt != started {
            // Another broker (a restart): what the last one knew says nothing about this one.
            brokerStartedAt = started
            live = nil
            absentSince = [:]
        }
        let previous = live
        live = current
        let settled = now - started >= expiryMs
        var changes = Changes()
        for (id, connected) in recorded.sorted(by: { $0.key < $1.key }) {
            if current.contains(id) {
                absentSince[id] = nil
                if !connected, let previous, !previous.contains(id) { changes.connected.append(id) }
                continue
            }
            guard connected else {
                absentSince[id] = nil
                continue
            }
            if previous?.contains(id) == true {
                changes.disconnected.append(id)
                absentSince[id] = nil
                continue
            }
            let since = absentSince[id] ?? now
            absentSince[id] = since
            if settled && now - since >= expiryMs {
                changes.disconnected.append(id)
                absentSince[id] = nil
            }
        }
        // Forget devices no longer recorded (unregistered).
        absentSince = absentSince.filter { recorded[$0.key] != nil }
        return changes
    }

    /// A poll failed (bus or broker unreachable): nothing is decided until the next one that succeeds,
    /// and that one starts afresh.
    public mutating func pollFailed() {
        brokerStartedAt = nil
        live = nil
        absentSince = [:]
    }
}

/// Keeps each device's recorded presence true to the broker's liveness: polls `bus.broker`'s status
/// for the `device/` services twice per heartbeat interval and records what `LivenessTracker` decides,
/// each change with its `inventory.device.disconnected` / `.connected` event. Every inventory instance
/// runs one; a change is recorded (and its event written) once, by whichever instance gets there first.
public final class PresenceWatcher: Service, Sendable {
    /// The reporter id presence changes made by the watcher are recorded under.
    public static let reporter = "bus-liveness"

    private let pool: PostgresPool
    private let client: BusClient
    private let pollInterval: Duration
    private let logger: Logger

    /// A watcher polling every `pollIntervalMs`.
    public init(pool: PostgresPool, client: BusClient, pollIntervalMs: Int64, logger: Logger) {
        self.pool = pool
        self.client = client
        self.pollInterval = .milliseconds(max(50, pollIntervalMs))
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            var tracker = LivenessTracker()
            var failing = false
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                do {
                    try await poll(&tracker)
                    if failing { logger.info("presence follows the bus's liveness again") }
                    failing = false
                } catch is CancellationError {
                    return
                } catch {
                    tracker.pollFailed()
                    if !failing {
                        logger.warning(
                            "cannot follow device liveness; presence stays as recorded until the bus answers",
                            metadata: ["error": "\(error)"])
                    }
                    failing = true
                }
            }
        }
    }

    private func poll(_ tracker: inout LivenessTracker) async throws {
        var request = Rampart_Bus_V1_BrokerStatusRequest()
        request.servicePrefix = BusProtocol.deviceServicePrefix
        let status: Rampart_Bus_V1_BrokerStatusResponse = try await client.call(
            BrokerAPI.status, request, timeout: .seconds(5), idempotent: true)
        guard status.startedUnixMs > 0, status.heartbeatIntervalMs > 0 else {
            throw RPCError.failedPrecondition("the broker does not say when it started (an older bus): liveness cannot be followed")
        }
        let live = Set(
            status.services.filter { !$0.instances.isEmpty }.map { String($0.name.dropFirst(BusProtocol.deviceServicePrefix.count)) })
        let recorded = try await pool.withConnection { try InventoryStore.presences(on: $0) }
        let changes = tracker.observe(
            live: live, brokerStartedAt: status.startedUnixMs, expiryMs: status.heartbeatIntervalMs * max(1, status.liveness),
            recorded: recorded, now: unixMillis())
        let missed = max(1, status.liveness)
        for id in changes.disconnected {
            try await record(id, connected: false, reason: "the bus heard no heartbeat from it for \(missed) intervals, or it left")
        }
        for id in changes.connected {
            try await record(id, connected: true, reason: "its service is live on the bus again")
        }
    }

    private func record(_ id: String, connected: Bool, reason: String) async throws {
        let logger = logger
        try await pool.transaction { connection in
            guard try InventoryStore.setLiveness(id: id, connected: connected, reporter: Self.reporter, on: connection) else {
                return
            }
            let device = try InventoryStore.device(id, on: connection)
            try EventOutbox.append(
                OutboxEvent(
                    topic: connected ? "inventory.device.connected" : "inventory.device.disconnected", subject: device.id,
                    attributes: ["device_name": device.name, "role": device.role.label, "caller": InventoryAPI.serviceName, "reason": reason],
                    message: device),
                source: InventoryAPI.serviceName, on: connection)
            logger.notice(
                connected ? "device connected" : "device disconnected",
                metadata: ["device": "\(device.name)", "device-id": "\(device.id)", "reason": "\(reason)"])
        }
    }
}
