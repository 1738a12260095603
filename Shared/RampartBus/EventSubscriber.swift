import Foundation
import Logging
import RampartAPI
import RampartProto
import ZeroMQ

/// Exactly-once, in-order delivery over a lossy live stream, as a pure state machine: live events
/// and publisher heartbeats in; deliveries and replay requests out. `position` is the highest
/// sequence number already handled (delivered, or skipped because its topic did not match).
public struct EventSequencer: Sendable {
    /// What the subscriber must do.
    public enum Action: Equatable, Sendable {
        case deliver(Rampart_Bus_V1_Event)
        /// Ask the journal for events after `since` (a gap, or events missed while away).
        case replay(since: UInt64)
    }

    public private(set) var position: UInt64
    public let topicPrefix: String
    private var replayPending = false

    /// A sequencer that has handled everything up to `position`.
    public init(position: UInt64, topicPrefix: String) {
        self.position = position
        self.topicPrefix = topicPrefix
    }

    /// A live event arrived.
    public mutating func live(_ event: Rampart_Bus_V1_Event) -> [Action] {
        guard event.seq > position else { return [] }
        if event.seq == position + 1 && !replayPending {
            position = event.seq
            return event.topic.hasPrefix(topicPrefix) ? [.deliver(event)] : []
        }
        return requestReplay()
    }

    /// The publisher said its journal ends at `lastSeq`.
    public mutating func heartbeat(lastSeq: UInt64) -> [Action] {
        lastSeq > position ? requestReplay() : []
    }

    /// A replay answer: events after the requested seq (matching the prefix) and the journal's end.
    /// `complete` is false when the answer was cut at its limit.
    public mutating func replayed(_ events: [Rampart_Bus_V1_Event], lastSeq: UInt64, complete: Bool) -> [Action] {
        replayPending = false
        var actions: [Action] = []
        for event in events where event.seq > position {
            position = event.seq
            if event.topic.hasPrefix(topicPrefix) { actions.append(.deliver(event)) }
        }
        if complete {
            position = max(position, lastSeq)
        } else {
            actions += requestReplay()
        }
        return actions
    }

    private mutating func requestReplay() -> [Action] {
        guard !replayPending else { return [] }
        replayPending = true
        return [.replay(since: position)]
    }
}

/// Follows the event stream: replays from a sequence number, then live events from the PUB
/// endpoint, filling every gap through `Journal/Replay` so that each event matching the topic
/// prefix is delivered once, in order, whatever was missed.
public struct EventSubscriber: Sendable {
    private let client: BusClient
    private let topicPrefix: String
    private let publishEndpoint: String?
    private let logger: Logger

    /// A subscriber using `client` for replays; the PUB endpoint is asked of the journal unless given.
    public init(client: BusClient, topicPrefix: String = "", publishEndpoint: String? = nil, logger: Logger) {
        self.client = client
        self.topicPrefix = topicPrefix
        self.publishEndpoint = publishEndpoint
        self.logger = logger
    }

    /// Delivers events after `since` (nil: only events from now on) to `body` until it returns false,
    /// the task is cancelled, or the bus stays unreachable past `timeout` per call.
    public func follow(
        since: UInt64?, timeout: Duration = .seconds(5),
        _ body: @Sendable (Rampart_Bus_V1_Event) async throws -> Bool
    ) async throws {
        let info: Rampart_Bus_V1_JournalInfoResponse = try await client.call(
            JournalAPI.info, Rampart_Bus_V1_JournalInfoRequest(),
            timeout: timeout, idempotent: true)
        let endpoint = publishEndpoint ?? info.publishEndpoint
        let control = LoopControl()
        let (stream, continuation) = AsyncStream<Live>.makeStream(bufferingPolicy: .bufferingNewest(100_000))
        let logger = logger
        let security = client.security
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await runOnDedicatedThread(name: "event-sub", control: control) {
                    defer { continuation.finish() }
                    try Self.receive(
                        from: endpoint, security: security, control: control, into: continuation, logger: logger)
                }
            }
            defer { control.stop() }
            var sequencer = EventSequencer(position: since ?? info.lastSeq, topicPrefix: topicPrefix)
            var actions: [EventSequencer.Action] = since == nil ? [] : sequencer.heartbeat(lastSeq: info.lastSeq)
            var iterator = stream.makeAsyncIterator()
            while true {
                while !actions.isEmpty {
                    switch actions.removeFirst() {
                    case .deliver(let event):
                        guard try await body(event) else { return }
                    case .replay(let since):
                        var request = Rampart_Bus_V1_ReplayRequest()
                        request.sinceSeq = since
                        request.topicPrefix = topicPrefix
                        request.limit = 1000
                        let answer: Rampart_Bus_V1_ReplayResponse = try await client.call(
                            JournalAPI.replay, request,
                            timeout: timeout, idempotent: true)
                        actions += sequencer.replayed(
                            answer.events, lastSeq: answer.lastSeq, complete: answer.events.count < Int(request.limit))
                    }
                }
                guard let next = await iterator.next() else { return }
                switch next {
                case .event(let event): actions = sequencer.live(event)
                case .heartbeat(let lastSeq): actions = sequencer.heartbeat(lastSeq: lastSeq)
                }
            }
        }
    }

    enum Live: Sendable {
        case event(Rampart_Bus_V1_Event)
        case heartbeat(UInt64)
    }

    private static func receive(
        from endpoint: String, security: BusSecurity, control: LoopControl, into continuation: AsyncStream<Live>.Continuation, logger: Logger
    ) throws {
        try control.wakeup.ensureUsable()
        let socket = try ZMQSocket(.sub)
        try socket.setHighWaterMarks(send: 1000, receive: 100_000)
        try socket.subscribe("")  // everything: gaps are then exact (docs/protocol.md, "Events")
        try security.apply(to: socket)
        try socket.connect(endpoint)
        var poller = ZMQPoller()
        let index = poller.add(socket)
        poller.add(fileDescriptor: control.wakeup.readDescriptor)
        while !control.isStopRequested {
            try poller.poll(timeoutMilliseconds: 500)
            control.wakeup.drain()
            guard poller.isReadable(index) else { continue }
            while let frames = try socket.receive(dontWait: true) {
                guard frames.count == 2, let topic = String(data: frames[0], encoding: .utf8) else {
                    logger.warning("malformed event frames dropped")
                    continue
                }
                if topic == BusProtocol.eventHeartbeatTopic {
                    if let heartbeat = try? Rampart_Bus_V1_PublisherHeartbeat(serializedBytes: frames[1]) {
                        continuation.yield(.heartbeat(heartbeat.lastSeq))
                    }
                } else if let event = try? Rampart_Bus_V1_Event(serializedBytes: frames[1]) {
                    continuation.yield(.event(event))
                } else {
                    logger.warning("undecodable event dropped", metadata: ["topic": "\(topic)"])
                }
            }
        }
    }
}
