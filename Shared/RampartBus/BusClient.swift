import Foundation
import Logging
import RampartBasics
import RampartProto
import RampartRPC
import Synchronization
import SwiftProtobuf
import ZeroMQ

/// Calls services over the bus. Thread-safe; one DEALER socket on its own thread, started at the
/// first call. Every call has a deadline and ends by it: a reply, the broker's status, or
/// `DEADLINE_EXCEEDED` made locally when nothing came back (the bus may be down).
public final class BusClient: Sendable, RPCCaller {
    /// Where the broker listens.
    public let endpoint: String
    /// How this client authenticates to the broker (subscribers made from it use the same key).
    public let security: BusSecurity
    private let caller: String
    private let logger: Logger
    private let control = LoopControl()
    private let mailbox: Mailbox
    private let state = Mutex(State())
    private let loopExecutor: LoopExecutor
    private let traceIds = TraceIds()

    /// Runs tasks on this client's socket thread. A caller that makes its calls one after another can
    /// prefer it (`Task(executorPreference: client.executor) { … }`): its requests then leave, and its
    /// replies resume it, without waking another thread — two wake-ups fewer per call. Its own work runs
    /// on that thread too, between the socket's polls: keep computing elsewhere.
    public var executor: any TaskExecutor {
        startIfNeeded()  // the loop runs whatever is enqueued to it (or hands it on once it has ended)
        return loopExecutor
    }

    private struct Pending {
        var continuation: CheckedContinuation<Reply, Never>
        var deadline: Int64
        var service: String
        var method: String
    }

    private struct State {
        var pending: [UInt64: Pending] = [:]
        var nextId: UInt64 = 1
        var started = false
        var closed = false
        var heardFromBroker = false
    }

    /// A reply: the header (status, message) and the payload.
    public struct Reply: Sendable {
        public var header: Rampart_Bus_V1_ReplyHeader
        public var payload: Data
    }

    /// A client of the broker at `endpoint`, authenticating with `security`, naming itself `caller` in
    /// request metadata (for logs; services trust only the authenticated identity).
    public init(
        endpoint: String, security: BusSecurity, caller: String = "rampart",
        logger: Logger = Logger(label: "rampart.bus.client")
    ) {
        self.endpoint = endpoint
        self.security = security
        self.caller = caller
        self.logger = logger
        self.mailbox = Mailbox(wakeup: control.wakeup)
        self.loopExecutor = LoopExecutor(wakeup: control.wakeup)
    }

    /// Ends the socket thread; calls still waiting end with `CANCELLED`.
    public func close() {
        control.stop()
        let waiting = state.withLock { state in
            state.closed = true
            defer { state.pending.removeAll() }
            return Array(state.pending)
        }
        for (id, pending) in waiting {
            pending.continuation.resume(returning: Self.localReply(id, .cancelled, "the client was closed"))
        }
    }

    /// Calls `method` of `service` and decodes its response; throws `RPCError` for any status but OK.
    /// Idempotent calls are retried with backoff while the status is `UNAVAILABLE` and time remains.
    public func call<Response: SwiftProtobuf.Message>(
        service: String, method: String, _ request: some SwiftProtobuf.Message, as: Response.Type = Response.self,
        timeout: Duration = .seconds(5), idempotent: Bool = false, metadata: [String: String] = [:]
    ) async throws -> Response {
        let deadline = unixMillis() + timeout.milliseconds
        let payload = FrameCodec.serialize(request)
        var backoff: Int64 = 50
        var unavailable: Reply?
        while true {
            var reply = await send(service: service, method: method, payload: payload, deadline: deadline, metadata: metadata)
            if reply.header.status == .deadlineExceeded, let unavailable {
                // The deadline ran out while retrying: what the caller needs is why it was retrying.
                reply = unavailable
            }
            switch reply.header.status {
            case .ok:
                do {
                    return try Response(serializedBytes: reply.payload)
                } catch {
                    throw RPCError(.internal, "\(service) answered \(method) with a payload that is not a \(Response.protoMessageName)")
                }
            case .unavailable where idempotent && unixMillis() + backoff < deadline:
                unavailable = reply
                logger.debug("retrying", metadata: ["service": "\(service)", "backoff-ms": "\(backoff)"])
                try await Task.sleep(for: .milliseconds(backoff))
                backoff = min(backoff * 2, 1000)
            default:
                throw RPCError(reply.header.status, reply.header.message)
            }
        }
    }

    /// Sends one request and waits for its reply until `deadline` (ms since the epoch); never throws.
    public func send(
        service: String, method: String, payload: Data, deadline: Int64, metadata: [String: String] = [:]
    ) async -> Reply {
        let id = state.withLock { state -> UInt64? in
            guard !state.closed else { return nil }
            defer { state.nextId += 1 }
            return state.nextId
        }
        guard let id else { return Self.localReply(0, .cancelled, "the client was closed") }
        var header = Rampart_Bus_V1_RequestHeader()
        header.requestID = id
        header.method = method
        header.deadlineUnixMs = deadline
        header.metadata = metadata
        if header.metadata["caller"] == nil { header.metadata["caller"] = caller }
        if header.metadata["trace-id"] == nil { header.metadata["trace-id"] = traceIds.make(id) }
        let frames = FrameCodec.clientRequest(service: service, header: header, payload: payload)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                state.withLock {
                    $0.pending[id] = Pending(continuation: continuation, deadline: deadline, service: service, method: method)
                }
                // From the socket thread itself (a caller preferring `executor`), the loop sends it
                // before it polls again.
                mailbox.push(frames, wake: !loopExecutor.isLoopThread)
                // Started (or started again after a failed loop) once the call is registered, so that a
                // loop failing meanwhile either fails this call or is followed by one that sends it.
                startIfNeeded()
            }
        } onCancel: {
            resolve(id, Self.localReply(id, .cancelled, "the call was cancelled"))
        }
    }

    private static func localReply(_ id: UInt64, _ status: Rampart_Bus_V1_StatusCode, _ message: String) -> Reply {
        Reply(header: FrameCodec.replyHeader(requestId: id, status: status, message: message, answeredBy: "client"), payload: Data())
    }

    private func resolve(_ id: UInt64, _ reply: Reply) {
        let pending = state.withLock { $0.pending.removeValue(forKey: id) }
        pending?.continuation.resume(returning: reply)
    }

    private func startIfNeeded() {
        let start = state.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        guard start else { return }
        Thread.start(named: "bus-client") { [self] in
            do { try loop() } catch { stopped(by: error) }
        }
    }

    /// The loop could not run or failed (its socket or wakeup could not be made — the process out of file
    /// descriptors, most often): every call waiting gets UNAVAILABLE with the reason instead of waiting
    /// for ever, what was queued for the socket is dropped, and the next call starts a loop again.
    private func stopped(by error: any Error) {
        let waiting = state.withLock { state in
            state.started = false
            defer { state.pending.removeAll() }
            return Array(state.pending)
        }
        _ = mailbox.takeAll()
        logger.error(
            "bus client stopped; calls waiting fail UNAVAILABLE and the next call tries again",
            metadata: ["error": "\(error)", "calls": "\(waiting.count)"])
        for (id, pending) in waiting {
            pending.continuation.resume(returning: Self.localReply(id, .unavailable, "the bus client stopped: \(error)"))
        }
    }

    private func loop() throws {
        loopExecutor.loopStarted()
        defer { loopExecutor.loopEnded() }
        try control.wakeup.ensureUsable()
        let socket = try ZMQSocket(.dealer)
        try socket.setMaxMessageSize(BusProtocol.maxMessageSize)
        try security.apply(to: socket)
        try socket.connect(endpoint)
        var poller = ZMQPoller()
        let socketIndex = poller.add(socket)
        let wakeupIndex = poller.add(fileDescriptor: control.wakeup.readDescriptor)
        while !control.isStopRequested {
            let next = state.withLock { $0.pending.values.lazy.map(\.deadline).min() }
            let wait = next.map { max(0, min($0 - unixMillis(), 250)) } ?? 250
            try poller.poll(timeoutMilliseconds: Int(wait))
            if poller.isReadable(wakeupIndex) { control.wakeup.drain() }  // no byte, no read
            send(mailbox, on: socket)
            if poller.isReadable(socketIndex) {
                while let frames = try socket.receive(dontWait: true) {
                    guard let (header, payload) = FrameCodec.decodeClientReply(frames) else {
                        logger.warning("malformed reply dropped")
                        continue
                    }
                    state.withLock { $0.heardFromBroker = true }
                    resolve(header.requestID, Reply(header: header, payload: payload))
                }
            }
            expireDeadlines()
            // Tasks preferring `executor`: those resumed by the replies above and any enqueued from
            // elsewhere; what they send leaves now.
            loopExecutor.runJobs()
            send(mailbox, on: socket)
        }
    }

    private func send(_ mailbox: Mailbox, on socket: ZMQSocket) {
        for frames in mailbox.takeAll() {
            // Never blocking: a DEALER with no peer at all (the bus refused this key's handshake) blocks a
            // plain send for good, and with it the deadlines this thread enforces — a CLI with `--timeout 1`
            // once hung for hours. Unsent, the call ends at its deadline ("nothing has been heard from the bus").
            do {
                if try !socket.send(frames, dontWait: true) {
                    logger.debug("request not sent: no connection to the bus")
                }
            } catch {
                logger.warning("request not sent", metadata: ["error": "\(error)"])
            }
        }
    }

    private func expireDeadlines() {
        let now = unixMillis()
        let (expired, heard) = state.withLock { state -> ([(UInt64, Pending)], Bool) in
            // No intermediate dictionary: this runs every loop turn.
            var expired: [(UInt64, Pending)] = []
            for (id, pending) in state.pending where pending.deadline <= now { expired.append((id, pending)) }
            for (id, _) in expired { state.pending[id] = nil }
            return (expired, state.heardFromBroker)
        }
        for (id, pending) in expired {
            let hint = heard ? "" : " (nothing has been heard from the bus at \(endpoint): is the bus running?)"
            pending.continuation.resume(
                returning: Self.localReply(
                    id, .deadlineExceeded, "no answer from service '\(pending.service)' before the deadline\(hint)"))
        }
    }
}

extension Duration {
    /// The duration in whole milliseconds.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
