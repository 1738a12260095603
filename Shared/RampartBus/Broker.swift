import Foundation
import Logging
import RampartProto
import ServiceLifecycle
import Synchronization
import ZeroMQ

/// The broker's I/O shell: one ROUTER socket on one thread, feeding `BrokerStateMachine` and
/// carrying out its actions. Answers `bus.broker` (`rampart.bus.v1.Broker/Status`) itself.
public final class Broker: Service, Sendable {
    /// Method name of the broker's own status call.
    public static let statusMethod = "rampart.bus.v1.Broker/Status"

    private let endpoints: [String]
    private let configuration: BrokerStateMachine.Configuration
    private let logger: Logger
    private let control = LoopControl()
    private let bound = Mutex<String?>(nil)

    /// A broker that will bind every one of `endpoints` ("tcp://127.0.0.1:7400", "inproc://broker";
    /// a tcp port `*` picks a free one). Clients and instances may connect to any of them.
    public init(endpoints: [String], configuration: BrokerStateMachine.Configuration = .init(), logger: Logger) {
        precondition(!endpoints.isEmpty, "a broker needs an endpoint")
        self.endpoints = endpoints
        self.configuration = configuration
        self.logger = logger
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
        let socket = try ZMQSocket(.router)
        try socket.setMaxMessageSize(BusProtocol.maxMessageSize)
        try socket.setHighWaterMarks(send: 100_000, receive: 100_000)
        var actual = ""
        for endpoint in endpoints {
            try socket.bind(endpoint)
            if actual.isEmpty { actual = socket.lastEndpoint }
        }
        bound.withLock { $0 = actual }
        logger.info("broker listening", metadata: ["endpoint": "\(actual)"])

        var state = BrokerStateMachine(configuration: configuration)
        var malformed: UInt64 = 0
        var poller = ZMQPoller()
        let socketIndex = poller.add(socket)
        poller.add(fileDescriptor: control.wakeup.readDescriptor)
        let tickMs: Int64 = 20
        var lastTick: Int64 = 0

        while !control.isStopRequested {
            try poller.poll(timeoutMilliseconds: Int(tickMs))
            control.wakeup.drain()
            if poller.isReadable(socketIndex) {
                // Take what is there now, but bounded, so ticks still happen under load.
                for _ in 0..<1000 {
                    guard let frames = try socket.receive(dontWait: true) else { break }
                    let now = unixMillis()
                    switch FrameCodec.decodeAtBroker(frames) {
                    case .success(.clientRequest(let client, BusProtocol.brokerService, let header, _)):
                        var status = state.status()
                        status.malformedFrames = malformed
                        perform(answerBrokerCall(client: client, header: header, status: status), on: socket)
                    case .success(let message):
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
            let now = unixMillis()
            if now - lastTick >= tickMs {
                lastTick = now
                perform(state.tick(now: now), on: socket)
            }
        }
        logger.info("broker stopped")
    }

    private func answerBrokerCall(client: Data, header: Rampart_Bus_V1_RequestHeader, status: Rampart_Bus_V1_BrokerStatusResponse)
        -> [BrokerStateMachine.Action]
    {
        let reply: Rampart_Bus_V1_ReplyHeader
        var payload = Data()
        if header.method == Broker.statusMethod {
            reply = FrameCodec.replyHeader(requestId: header.requestID, status: .ok, message: "", answeredBy: "broker")
            payload = FrameCodec.serialize(status)
        } else {
            reply = FrameCodec.replyHeader(
                requestId: header.requestID, status: .unimplemented,
                message: "the broker has no method '\(header.method)'", answeredBy: "broker")
        }
        return [.reply(client: client, service: BusProtocol.brokerService, header: reply, payload: payload)]
    }

    private func perform(_ actions: [BrokerStateMachine.Action], on socket: ZMQSocket) {
        for action in actions {
            let frames: [Data]
            switch action {
            case .dispatch(let worker, let client, let header, let payload):
                frames = FrameCodec.toWorker(worker, .request, [client, FrameCodec.serialize(header), payload])
            case .reply(let client, let service, let header, let payload):
                frames = FrameCodec.replyToClient(
                    client: client, service: service, header: FrameCodec.serialize(header), payload: payload)
            case .heartbeat(let worker):
                frames = FrameCodec.toWorker(worker, .heartbeat)
            case .disconnect(let worker):
                frames = FrameCodec.toWorker(worker, .disconnect)
            }
            do {
                try socket.send(frames, dontWait: true)
            } catch {
                logger.debug("send failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
