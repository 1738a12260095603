import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC
import ServiceLifecycle
import Synchronization

/// How delivery is paced.
public struct DeliveryConfiguration: Sendable {
    /// Retries of a hook that failed (P15).
    public var backoff = Backoff()
    /// Deadline of one POST.
    public var requestTimeout: Duration = .seconds(10)
    /// How long an instance holds a hook it delivers to; renewed before every POST, so longer than one.
    public var leaseSeconds = 30
    /// How often the journal is read when no live event woke a hook, and hooks are looked for.
    public var pollInterval: Duration = .seconds(1)
    /// Events asked of the journal at once.
    public var replayLimit: UInt32 = 200
    /// Deadline of bus calls (journal replays).
    public var callTimeout: Duration = .seconds(5)
    /// How hook URLs and secrets are sealed at rest.
    public var sealing: HookSealing

    public init(sealing: HookSealing) { self.sealing = sealing }
}

/// A wake-up every hook worker waits on: pulsed by each live event, so that a hook that is up to
/// date reads the journal at once rather than at its next poll. Waiters sleep on a continuation, so
/// an idle hook costs nothing between pulses.
final class Pulse: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    func pulse() {
        let waiting = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for continuation in waiting { continuation.resume() }
    }

    var current: UInt64 { state.withLock { $0.generation } }

    /// Returns when pulsed after `seen`, after `timeout`, or when the task is cancelled (then throws).
    func wait(after seen: UInt64, timeout: Duration) async throws {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let pulsed = state.withLock { state in
                    guard state.generation == seen, !Task.isCancelled else { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if pulsed {
                    continuation.resume()
                } else {
                    // Registered first, so the timer can never miss its waiter.
                    Task { [self] in
                        try? await Task.sleep(for: timeout)
                        wake(id)
                    }
                }
            }
        } onCancel: {
            wake(id)
        }
        try Task.checkCancellation()
    }

    /// Resumes waiter `id` if it still waits.
    private func wake(_ id: UUID) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}

/// Delivers chosen events to every hook (P15): one task per hook this instance holds, each reading
/// the journal from the hook's own `last_seq` (`Journal/Replay`), POSTing each chosen event until the
/// hook answers 2xx (retrying with `Backoff`), and storing the new position with the delivery. A hook
/// that is down holds up only itself. The live event stream only wakes the tasks
/// (docs/decisions.md, "Notifications: each hook reads the journal at its own position").
public final class Dispatcher: Service, Sendable {
    let pool: PostgresPool
    let client: BusClient
    let sender: any WebhookSending
    let configuration: DeliveryConfiguration
    let owner: String
    let logger: Logger
    let pulse = Pulse()
    private let running = Mutex<Set<UUID>>([])

    public init(
        pool: PostgresPool, client: BusClient, sender: any WebhookSending, configuration: DeliveryConfiguration,
        owner: String, logger: Logger
    ) {
        self.pool = pool
        self.client = client
        self.sender = sender
        self.configuration = configuration
        self.owner = owner
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.followLive() }
                group.addTask { await self.superviseHooks() }
                await group.waitForAll()
            }
        }
        // A POST cancelled in flight was not stored as delivered: whoever holds the hook next sends it again.
        let owner = owner
        try? await pool.withConnection { try HookStore.release(owner: owner, on: $0) }
        logger.info("notifier stopped; its hooks released")
    }

    /// Wakes the hook tasks at every live event; reconnects when the bus goes away.
    func followLive() async {
        let subscriber = EventSubscriber(client: client, logger: logger)
        while !Task.isCancelled {
            do {
                try await subscriber.follow(since: nil, timeout: configuration.callTimeout) { [pulse] _ in
                    pulse.pulse()
                    return !Task.isCancelled
                }
            } catch is CancellationError {
                return
            } catch {
                logger.debug("event stream lost; following again", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Starts a task for every hook in the table that has none, every poll interval, until cancelled.
    func superviseHooks() async {
        await withTaskGroup(of: Void.self) { tasks in
            while !Task.isCancelled {
                do {
                    let ids = try await pool.withConnection { try HookStore.ids(on: $0) }
                    for id in ids {
                        let isNew = running.withLock { $0.insert(id).inserted }
                        guard isNew else { continue }
                        tasks.addTask {
                            await self.deliver(hook: id)
                            _ = self.running.withLock { $0.remove(id) }
                        }
                    }
                } catch is CancellationError {
                    break
                } catch {
                    logger.warning("cannot read the hooks", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: configuration.pollInterval)
            }
            tasks.cancelAll()
        }
    }

    /// Delivers to hook `id` while this instance holds it and the hook exists.
    func deliver(hook id: UUID) async {
        let owner = owner
        let (leaseSeconds, sealing) = (configuration.leaseSeconds, configuration.sealing)
        func claim() async throws -> HookRecord? {
            try await pool.withConnection { try HookStore.claim(id, owner: owner, seconds: leaseSeconds, sealing: sealing, on: $0) }
        }
        var hookLogger = logger
        hookLogger[metadataKey: "hook"] = "\(id.uuidString.lowercased())"
        do {
            guard let first = try await claim() else { return }
            hookLogger[metadataKey: "url"] = "\(URLMasking.masked(first.url))"
            hookLogger.info("delivering", metadata: ["after-seq": "\(first.lastSeq)", "topics": "\(first.topics)"])
            var hook = first
            while !Task.isCancelled {
                let seen = pulse.current
                var request = Rampart_Bus_V1_ReplayRequest()
                request.sinceSeq = hook.lastSeq
                request.topicPrefix = TopicFilter.commonPrefix(hook.topics)
                request.limit = configuration.replayLimit
                let answer: Rampart_Bus_V1_ReplayResponse
                do {
                    answer = try await client.call(
                        JournalAPI.replay, request, timeout: configuration.callTimeout, idempotent: true)
                } catch let error as RPCError {
                    hookLogger.debug("journal unavailable", metadata: ["error": "\(error.message)"])
                    try await Task.sleep(for: configuration.pollInterval)
                    continue
                }
                var position = hook.lastSeq
                for event in answer.events where event.seq > position {
                    if TopicFilter.matches(event.topic, hook.topics) {
                        guard try await deliver(event, to: hook, logger: hookLogger) else { return }
                    }
                    position = event.seq
                    hook.lastSeq = position
                }
                // Every event through the journal's end was seen when the answer was not cut at its limit.
                let complete = answer.events.count < Int(request.limit)
                let end = complete ? max(position, answer.lastSeq) : position
                guard let renewed = try await claim() else { return }
                if end > renewed.lastSeq {
                    let advanced = try await pool.withConnection {
                        try HookStore.advance(id, to: end, delivered: false, owner: owner, now: Date(), on: $0)
                    }
                    guard advanced else { return }
                }
                hook = renewed
                hook.lastSeq = max(renewed.lastSeq, end)
                if complete { try await pulse.wait(after: seen, timeout: configuration.pollInterval) }
            }
        } catch is CancellationError {
            return
        } catch {
            hookLogger.warning("delivery stopped; it starts again", metadata: ["error": "\(error)"])
            try? await Task.sleep(for: configuration.pollInterval)
        }
    }

    /// POSTs `event` to `hook` until it answers 2xx, then stores it as delivered. False when this
    /// instance no longer holds the hook (removed, or taken by another instance).
    func deliver(_ event: Rampart_Bus_V1_Event, to hook: HookRecord, logger: Logger) async throws -> Bool {
        let body = WebhookBody.json(event)
        let headers = Self.headers(body: body, topic: event.topic, seq: event.seq, hook: hook)
        var failures = 0
        let owner = owner
        let (leaseSeconds, sealing) = (configuration.leaseSeconds, configuration.sealing)
        while true {
            try Task.checkCancellation()
            guard
                let current = try await pool.withConnection({
                    try HookStore.claim(hook.id, owner: owner, seconds: leaseSeconds, sealing: sealing, on: $0)
                }), current.lastSeq < event.seq, current.url == hook.url
            else { return false }
            let outcome = await sender.post(
                url: hook.url, body: body, headers: headers, timeout: configuration.requestTimeout)
            if outcome.delivered {
                let stored = try await pool.withConnection {
                    try HookStore.advance(hook.id, to: event.seq, delivered: true, owner: owner, now: Date(), on: $0)
                }
                logger.debug("delivered", metadata: ["seq": "\(event.seq)", "topic": "\(event.topic)"])
                return stored
            }
            failures += 1
            let delay = configuration.backoff.delay(afterFailures: failures)
            logger.warning(
                "delivery failed; retrying",
                metadata: [
                    "seq": "\(event.seq)", "topic": "\(event.topic)", "error": "\(outcome.error)",
                    "failures": "\(failures)", "retry-in": "\(delay)",
                ])
            let (error, count) = (outcome.error, failures)
            try await pool.withConnection { try HookStore.failed(hook.id, failures: count, error: error, on: $0) }
            try await Task.sleep(for: delay)
        }
    }

    /// The headers of one POST: what it is, an id a receiver can drop a repeat by, and the signature.
    static func headers(body: Data, topic: String, seq: UInt64, hook: HookRecord) -> [(String, String)] {
        var headers = [
            ("X-Rampart-Topic", topic), ("X-Rampart-Seq", "\(seq)"),
            ("X-Rampart-Delivery", "\(hook.id.uuidString.lowercased()):\(seq)"),
        ]
        if !hook.secret.isEmpty {
            headers.append((WebhookSignature.header, WebhookSignature.value(body: body, secret: hook.secret)))
        }
        return headers
    }
}
