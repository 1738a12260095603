import Foundation
import Logging
import RampartBasics
import RampartProto
import ServiceLifecycle
import Synchronization
import ZeroMQ

/// Serves a `ServiceRouter` on the bus as one instance of `service`: connects to the broker,
/// announces itself (READY with its capacity), runs requests concurrently, each in its own task, and keeps
/// the broker's heartbeat; reconnects when the broker goes silent or forgets it.
public final class ServiceHost: Service, Sendable {
    /// Settings of one instance.
    public struct Configuration: Sendable {
        public var service: String
        public var brokerEndpoint: String
        /// How the instance authenticates to the broker; with CURVE, callers are authenticated too.
        public var security: BusSecurity
        public var instanceId: String
        /// Requests run at once; the broker never sends more.
        public var capacity: UInt32 = 64
        public var heartbeatIntervalMs: Int64 = 2500
        public var liveness: Int64 = 3
        /// For a device's service: the serial of the appliance serving it (`WorkerInfo.serial`), which the
        /// broker checks against inventory before admitting the instance.
        public var serial = ""

        public init(service: String, brokerEndpoint: String, security: BusSecurity, instanceId: String? = nil) {
            self.service = service
            self.brokerEndpoint = brokerEndpoint
            self.security = security
            self.instanceId = instanceId ?? "\(service)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt16.random(in: 0...UInt16.max))"
        }
    }

    struct Incoming: Sendable {
        var client: Data
        var header: Rampart_Bus_V1_RequestHeader
        var payload: Data
    }

    private let configuration: Configuration
    private let router: ServiceRouter
    private let logger: Logger
    private let control = LoopControl()
    /// The tasks of the requests being handled, by a number of their own.
    private let handlers = Mutex(Handlers())

    private struct Handlers {
        var running: [UInt64: Task<Void, Never>] = [:]
        var nextId: UInt64 = 0
        /// Set when `run()` was cancelled: requests still being started are cancelled at once.
        var cancelled = false
    }

    /// What the device simulator's power switch makes of this instance (`device-agent power`).
    public enum Simulation: Sendable {
        /// Serving.
        case running
        /// As a process stopped with SIGSTOP: reads nothing, answers nothing, sends no heartbeat; what the
        /// broker sends waits in the socket. Back to `.running`, it goes on from there.
        case frozen
        /// As a pulled plug: `run()` ends at once, without a goodbye to the broker and with the requests
        /// in flight cancelled; the broker drops the instance when its heartbeats stop.
        case unplugged
    }

    private let simulation = Mutex(Simulation.running)
    private let registered = Atomic<Bool>(false)

    /// Whether the broker has taken this instance's current registration: it heard from the broker (a
    /// heartbeat or a request) since it last registered. A registration the broker refused (a device
    /// identity served elsewhere, a key that may not serve it) is told to go instead and never is.
    public var isRegistered: Bool { registered.load(ordering: .relaxed) }

    /// Freezes, unfreezes or unplugs this instance (the device simulator's power switch; never used by a
    /// service).
    public func simulate(_ state: Simulation) {
        simulation.withLock { $0 = state }
        control.wakeup.signal()
    }

    /// An instance of `configuration.service` serving `router`.
    public init(configuration: Configuration, router: ServiceRouter, logger: Logger) {
        self.configuration = configuration
        self.router = router
        var logger = logger
        logger[metadataKey: "instance"] = "\(configuration.instanceId)"
        self.logger = logger
    }

    /// Serves until cancelled or gracefully shut down; requests already running finish first (when
    /// cancelled, they are cancelled too, and the instance waits for them to end).
    public func run() async throws {
        let mailbox = Mailbox(wakeup: control.wakeup)
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await runOnDedicatedThread(name: "svc-\(configuration.service)", control: control) { [self] in
                    try loop(mailbox: mailbox)
                }
            } onGracefulShutdown: { [control] in
                control.stop()
            }
        } onCancel: { [self] in
            let running = handlers.withLock { handlers in
                handlers.cancelled = true
                return Array(handlers.running.values)
            }
            for task in running { task.cancel() }
        }
    }

    /// Runs one request in a task of its own, started straight from the socket thread, and hands its
    /// reply to the socket thread. (Requests went through an AsyncStream to a task group before: a hop
    /// more per request, about a fifth of the pipelined throughput; docs/benchmarks.md, "Bus round trips".) The
    /// task prefers `executor`: its first slice runs on the socket thread when `loop` calls
    /// `runAccepted()`, so a reply made without suspending goes out in the same loop turn.
    private func start(_ incoming: Incoming, mailbox: Mailbox, executor: SocketThreadExecutor) {
        handlers.withLock { handlers in
            let id = handlers.nextId
            handlers.nextId += 1
            // Created under the lock, so the task's own removal (below) always finds it.
            // A method registered `offSocketThread` runs on the blocking pool instead, where it may hold its
            // thread without delaying the cooperative pool.
            let preferred: any TaskExecutor =
                router.runsOffSocketThread(incoming.header.method) ? BlockingPool.shared : executor
            let task = Task(executorPreference: preferred) { [self] in
                var (header, payload) = await router.handle(
                    header: incoming.header, payload: incoming.payload,
                    instanceId: configuration.instanceId, logger: logger,
                    authenticated: configuration.security != .plain)
                header.route = incoming.client
                // On the socket thread the loop sends it right after; from elsewhere, wake the loop.
                mailbox.push(FrameCodec.workerReply(header, payload: payload), wake: !executor.isOwnerThread)
                let idle = self.handlers.withLock { handlers in
                    handlers.running[id] = nil
                    return handlers.running.isEmpty
                }
                // A draining loop waits for the last one (a stop requested after this check wakes it itself).
                if idle && control.isStopRequested { control.wakeup.signal() }
            }
            handlers.running[id] = task
            if handlers.cancelled { task.cancel() }
        }
    }

    /// Whether no request is being handled.
    private var isIdle: Bool { handlers.withLock { $0.running.isEmpty } }

    private func connect() throws -> ZMQSocket {
        let socket = try ZMQSocket(.dealer)
        try socket.setMaxMessageSize(BusProtocol.maxMessageSize)
        try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
        // inproc (a service inside the bus process) never uses CURVE.
        if !configuration.brokerEndpoint.hasPrefix("inproc://") { try configuration.security.apply(to: socket) }
        try socket.connect(configuration.brokerEndpoint)
        var info = Rampart_Bus_V1_WorkerInfo()
        info.instanceID = configuration.instanceId
        info.capacity = configuration.capacity
        info.service = configuration.service
        info.serial = configuration.serial
        registered.store(false, ordering: .relaxed)
        try socket.send(FrameCodec.workerReady(info))
        return socket
    }

    private func sendReplies(_ mailbox: Mailbox, on socket: ZMQSocket) {
        for frames in mailbox.takeAll() {
            do { try socket.send(frames, dontWait: true) } catch {
                logger.warning("reply could not be sent", metadata: ["error": "\(error)"])
            }
        }
    }

    private func loop(mailbox: Mailbox) throws {
        try control.wakeup.ensureUsable()
        let executor = SocketThreadExecutor()
        var socket = try connect()
        logger.info(
            "serving", metadata: ["service": "\(configuration.service)", "broker": "\(configuration.brokerEndpoint)"])
        let interval = configuration.heartbeatIntervalMs
        var heardAt = unixMillis()
        var nextHeartbeat = heardAt + interval
        var draining = false
        var connectedAt = heardAt
        var refusals = 0

        while true {
            switch simulation.withLock({ $0 }) {
            case .running:
                break
            case .frozen:
                var poller = ZMQPoller()
                let wakeupIndex = poller.add(fileDescriptor: control.wakeup.readDescriptor)
                try poller.poll(timeoutMilliseconds: 200)
                if poller.isReadable(wakeupIndex) { control.wakeup.drain() }
                if control.isStopRequested { simulation.withLock { $0 = .running } }  // a shutdown thaws it
                continue
            case .unplugged:
                socket.close()
                let running = handlers.withLock { handlers in
                    handlers.cancelled = true
                    return Array(handlers.running.values)
                }
                for task in running { task.cancel() }
                logger.notice("unplugged: gone from the bus without a word")
                return
            }
            if control.isStopRequested && !draining {
                draining = true
            }
            if draining && isIdle {
                for frames in mailbox.takeAll() { _ = try? socket.send(frames, dontWait: true) }
                _ = try? socket.send(FrameCodec.workerSignal(.disconnect), dontWait: true)
                socket.close()
                logger.info("stopped serving")
                return
            }
            var poller = ZMQPoller()
            let socketIndex = poller.add(socket)
            let wakeupIndex = poller.add(fileDescriptor: control.wakeup.readDescriptor)
            let wait = max(0, min(nextHeartbeat - unixMillis(), interval))
            try poller.poll(timeoutMilliseconds: Int(wait))
            if poller.isReadable(wakeupIndex) { control.wakeup.drain() }  // no byte, no read

            sendReplies(mailbox, on: socket)
            var reconnect = false
            if poller.isReadable(socketIndex) {
                while let frames = try socket.receive(dontWait: true) {
                    heardAt = unixMillis()
                    switch FrameCodec.decodeAtWorker(frames) {
                    case .request(let client, let header, let payload):
                        registered.store(true, ordering: .relaxed)
                        if draining {
                            var reply = FrameCodec.replyHeader(
                                requestId: header.requestID, status: .unavailable,
                                message: "instance \(configuration.instanceId) is shutting down",
                                answeredBy: configuration.instanceId)
                            reply.route = client
                            _ = try? socket.send(FrameCodec.workerReply(reply, payload: Data()))
                        } else {
                            executor.accepting {
                                start(
                                    Incoming(client: client, header: header, payload: payload), mailbox: mailbox,
                                    executor: executor)
                            }
                            executor.runAccepted()
                            // The reply of a request that ran to its end on this thread just now.
                            sendReplies(mailbox, on: socket)
                        }
                    case .heartbeat:
                        registered.store(true, ordering: .relaxed)
                    case .disconnect:
                        reconnect = true
                    case nil:
                        logger.warning("malformed message from the broker dropped")
                    }
                }
            }
            let now = unixMillis()
            if !reconnect && now - heardAt > interval * configuration.liveness {
                logger.warning("broker silent, reconnecting", metadata: ["silent-ms": "\(now - heardAt)"])
                reconnect = true
            }
            if reconnect {
                socket.close()
                // Told to go right after registering: the broker refused this instance (a key that may not
                // serve it, another instance already serving this device, inventory not confirming it). Ask
                // again later, more slowly each time, instead of at once and for ever.
                if now - connectedAt < interval * configuration.liveness {
                    refusals += 1
                    let backoff = min(30_000, interval << min(refusals - 1, 4))
                    logger.warning(
                        "the broker refused or dropped this instance right after it registered (the bus log says why); registering again later",
                        metadata: ["service": "\(configuration.service)", "retry-ms": "\(backoff)", "refusals": "\(refusals)"])
                    var poller = ZMQPoller()
                    let wakeupIndex = poller.add(fileDescriptor: control.wakeup.readDescriptor)
                    try poller.poll(timeoutMilliseconds: Int(backoff))
                    if poller.isReadable(wakeupIndex) { control.wakeup.drain() }
                    if control.isStopRequested {
                        logger.info("stopped serving")
                        return
                    }
                } else {
                    refusals = 0
                }
                socket = try connect()
                heardAt = unixMillis()
                connectedAt = heardAt
            }
            if now >= nextHeartbeat {
                _ = try? socket.send(FrameCodec.workerSignal(.heartbeat), dontWait: true)
                nextHeartbeat = now + interval
            }
        }
    }
}
