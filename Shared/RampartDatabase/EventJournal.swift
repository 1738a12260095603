import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBasics
import RampartBus
import RampartProto
import RampartRPC
import ServiceLifecycle
import Synchronization
import ZeroMQ

/// Journal queries: moving the outbox into the journal with gap-free sequence numbers, and replay.
public enum JournalStore {
    /// Moves up to `limit` committed outbox rows into the journal, numbering them after the last
    /// journal entry, in one transaction (so each event is journaled exactly once). Returns them in order.
    public static func moveOutbox(on connection: PostgresConnection, limit: Int = 500) throws -> [Rampart_Bus_V1_Event] {
        try connection.transaction { connection in
            try connection.execute("SELECT pg_advisory_xact_lock(\(journalLockKey))")
            let rows = try connection.query(
                """
                WITH moved AS (
                    DELETE FROM events.outbox
                    WHERE id IN (SELECT id FROM events.outbox ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                    RETURNING id, topic, source, subject, attributes, data_type, data, created_at),
                base AS (SELECT coalesce(max(seq), 0) AS last FROM events.journal)
                INSERT INTO events.journal (seq, topic, source, subject, attributes, data_type, data, time)
                SELECT base.last + row_number() OVER (ORDER BY moved.id), topic, source, subject, attributes,
                       data_type, data, created_at
                FROM moved, base
                RETURNING seq, topic, source, subject, attributes::text AS attributes, data_type, data, time
                """)
            return try rows.map(event(from:)).sorted { $0.seq < $1.seq }
        }
    }

    /// Events after `since` up to `through` whose topic starts with `prefix`, oldest first, at most `limit`.
    public static func replay(
        on connection: PostgresConnection, since: UInt64, through: UInt64, prefix: String, limit: Int
    ) throws
        -> [Rampart_Bus_V1_Event]
    {
        let rows = try connection.query(
            """
            SELECT seq, topic, source, subject, attributes::text AS attributes, data_type, data, time
            FROM events.journal
            WHERE seq > \(Int64(clamping: since)) AND seq <= \(Int64(clamping: through)) AND starts_with(topic, \(prefix))
            ORDER BY seq LIMIT \(limit)
            """)
        return try rows.map(event(from:))
    }

    /// The sequence number of the newest journal entry (0 when empty).
    public static func lastSeq(on connection: PostgresConnection) throws -> UInt64 {
        let rows = try connection.query("SELECT coalesce(max(seq), 0) AS last FROM events.journal")
        return UInt64(try rows.first?.decode("last", as: Int64.self) ?? 0)
    }

    private static let journalLockKey: Int64 = 0x5241_4D50_4A52  // "RAMPJR"

    private static func event(from row: PostgresRow) throws -> Rampart_Bus_V1_Event {
        var event = Rampart_Bus_V1_Event()
        event.seq = UInt64(try row.decode("seq", as: Int64.self))
        event.topic = try row.decode("topic")
        event.source = try row.decode("source")
        event.subject = try row.decode("subject")
        let attributes: String = try row.decode("attributes")
        event.attributes = (try? JSONDecoder().decode([String: String].self, from: Data(attributes.utf8))) ?? [:]
        event.dataType = try row.decode("data_type")
        event.data = try row.decode("data", as: Data.self)
        event.timeUnixMs = try row.decode("time", as: Date.self).unixMillis
        return event
    }
}

/// The bus's event publisher: moves committed outbox rows into the journal and publishes them in
/// sequence order on one PUB endpoint (frames: topic, `Event`), plus a `$heartbeat` with the last
/// sequence number once a second. Owns its PUB socket and its own database connection on one thread.
public final class EventPublisher: Service, Sendable {
    /// Topic of heartbeat messages (never journaled).
    public static let heartbeatTopic = BusProtocol.eventHeartbeatTopic

    private let connectionString: String
    private let endpoint: String
    private let secretKey: String?
    private let authorized: AuthorizedKeysSource?
    private let pollIntervalMs: Int
    private let logger: Logger
    private let control = LoopControl()
    private let bound = Mutex<String?>(nil)

    /// A publisher binding `endpoint` and reading the database at `connectionString`.
    /// `secretKey`: the broker's CURVE secret key; with it, subscribers must complete a CURVE handshake
    /// with a key the ZAP handler admits under `BrokerSecurity.eventsDomain`. nil: plain.
    /// `authorized`: when a key is revoked, the PUB socket is closed and bound again, so every
    /// subscriber reconnects through the ZAP handler and a revoked one gets nothing more (the others
    /// fill the gap from the journal, as after any reconnect).
    public init(
        connectionString: String, endpoint: String, secretKey: String?, authorized: AuthorizedKeysSource? = nil,
        pollIntervalMs: Int = 20, logger: Logger
    ) {
        self.secretKey = secretKey
        self.authorized = authorized
        self.connectionString = connectionString
        self.endpoint = endpoint
        self.pollIntervalMs = pollIntervalMs
        self.logger = logger
    }

    /// The endpoint actually bound, once running.
    public var boundEndpoint: String? { bound.withLock { $0 } }

    /// Publishes until cancelled or gracefully shut down.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await runOnDedicatedThread(name: "bus-publisher", control: control) { [self] in try loop() }
        } onGracefulShutdown: { [control] in
            control.stop()
        }
    }

    private func openSocket(_ endpoint: String) throws -> ZMQSocket {
        let socket = try ZMQSocket(.pub)
        try socket.setHighWaterMarks(send: 100_000, receive: 1000)
        if let secretKey { try socket.makeCurveServer(secretKey: secretKey, domain: BrokerSecurity.eventsDomain) }
        try socket.bind(endpoint)
        return socket
    }

    private func loop() throws {
        try control.wakeup.ensureUsable()
        var socket = try openSocket(endpoint)
        defer { socket.close() }
        let actual = socket.lastEndpoint
        bound.withLock { $0 = actual }
        logger.info("publishing events", metadata: ["endpoint": "\(actual)"])
        var removals = authorized?.removals ?? 0

        var connection: PostgresConnection?
        var lastSeq: UInt64 = 0
        var nextHeartbeat: Int64 = 0
        var failures = 0
        var poller = ZMQPoller()
        poller.add(fileDescriptor: control.wakeup.readDescriptor)
        var moreWaiting = false
        while !control.isStopRequested {
            if !moreWaiting {
                let backoff = failures == 0 ? pollIntervalMs : min(pollIntervalMs << min(failures, 6), 2000)
                try poller.poll(timeoutMilliseconds: backoff)
                control.wakeup.drain()
            }
            if let authorized {
                _ = authorized.current  // re-reads the file when it changed (at most every 0.5 s)
                if authorized.removals != removals {
                    removals = authorized.removals
                    socket.close()
                    // libzmq releases the port in its I/O thread, a moment after close: retry briefly.
                    var attempt = 0
                    while true {
                        do {
                            socket = try openSocket(actual)
                            break
                        } catch where attempt < 100 {
                            attempt += 1
                            usleep(20_000)
                        }
                    }
                    logger.notice("event stream restarted: a key was revoked, every subscriber reconnects through ZAP")
                }
            }
            do {
                if connection == nil || connection?.isHealthy == false {
                    connection = try PostgresConnection(connectionString: connectionString)
                    lastSeq = try JournalStore.lastSeq(on: connection!)
                }
                let events = try JournalStore.moveOutbox(on: connection!)
                moreWaiting = events.count == 500
                for event in events {
                    try socket.send([Data(event.topic.utf8), FrameCodec.serialize(event)])
                    lastSeq = event.seq
                }
                if failures > 0 { logger.info("database reachable again") }
                failures = 0
            } catch {
                moreWaiting = false
                failures += 1
                connection = nil
                if failures == 1 || failures % 50 == 0 {
                    logger.error("cannot move events to the journal", metadata: ["error": "\(error)", "failures": "\(failures)"])
                }
            }
            let now = unixMillis()
            if now >= nextHeartbeat {
                var heartbeat = Rampart_Bus_V1_PublisherHeartbeat()
                heartbeat.lastSeq = lastSeq
                heartbeat.timeUnixMs = now
                try socket.send([Data(Self.heartbeatTopic.utf8), FrameCodec.serialize(heartbeat)])
                nextHeartbeat = now + 1000
            }
        }
    }
}

/// The `bus.journal` service: `Replay` and `Info`, served by the bus process over its own broker.
public enum JournalService {
    /// Most events one Replay answer holds.
    public static let maxReplay: UInt32 = 10_000

    /// The router serving the journal from `pool`; `publishEndpoint` is what `Info` advertises.
    public static func router(pool: PostgresPool, publishEndpoint: @escaping @Sendable () -> String) -> ServiceRouter {
        var router = ServiceRouter(for: JournalAPI.self)
        router.register(JournalAPI.replay) { (request: Rampart_Bus_V1_ReplayRequest, _) in
            let limit = Int(request.limit == 0 ? 1000 : min(request.limit, maxReplay))
            return try await database {
                try await pool.withConnection { connection in
                    // last_seq first, and no event past it: a complete answer means "nothing up to last_seq is missing".
                    var response = Rampart_Bus_V1_ReplayResponse()
                    response.lastSeq = try JournalStore.lastSeq(on: connection)
                    response.events = try JournalStore.replay(
                        on: connection, since: request.sinceSeq, through: response.lastSeq, prefix: request.topicPrefix,
                        limit: limit)
                    return response
                }
            }
        }
        router.register(JournalAPI.info) { (_: Rampart_Bus_V1_JournalInfoRequest, _) in
            var response = Rampart_Bus_V1_JournalInfoResponse()
            response.publishEndpoint = publishEndpoint()
            response.lastSeq = try await database { try await pool.withConnection { try JournalStore.lastSeq(on: $0) } }
            return response
        }
        return router
    }
}
