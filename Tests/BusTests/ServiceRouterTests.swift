import Foundation
import Logging
import RampartBus
import RampartProto
import RampartRPC
import RampartTesting
import Testing

private let replay = RPCMethod<Rampart_Bus_V1_ReplayRequest, Rampart_Bus_V1_ReplayResponse>(
    service: "journal", name: "rampart.test.v1.Journal/Replay", policy: .read)
private let first = RPCMethod<Rampart_Bus_V1_BrokerStatusRequest, Rampart_Bus_V1_BrokerStatusResponse>(
    service: "journal", name: "rampart.test.v1.A/First", policy: .read)
private let replayMethod = replay.name
private let secret = "password=hunter2 at db.internal:5432"

/// A domain error that maps itself to a bus status.
private struct JobBusy: RPCErrorConvertible {
    var rpcError: RPCError { .failedPrecondition("job 12 is already running") }
}

private struct Leak: Error, CustomStringConvertible {
    var description: String { secret }
}

/// What the test handler does with a request.
private enum Behaviour: UInt32 {
    case answer = 0
    case notFound = 1
    case domainError = 2
    case otherError = 3
    case internalRPCError = 4
    case logs = 5
}

/// A router serving one method: ReplayRequest in, ReplayResponse out; `limit` picks the behaviour.
private func router() -> ServiceRouter {
    var router = ServiceRouter(serviceName: "journal", policy: AccessPolicy([replay, first]))
    router.register(replay) { (request: Rampart_Bus_V1_ReplayRequest, context) -> Rampart_Bus_V1_ReplayResponse in
        switch Behaviour(rawValue: request.limit) ?? .answer {
        case .answer:
            var response = Rampart_Bus_V1_ReplayResponse()
            response.lastSeq = request.sinceSeq + 1
            var event = Rampart_Bus_V1_Event()
            event.seq = request.sinceSeq + 1
            event.topic = request.topicPrefix + "answered"
            event.source = "\(context.method)|\(context.requestId)|\(context.caller)|\(context.deadlineUnixMs)"
            response.events = [event]
            return response
        case .notFound: throw RPCError.notFound("no journal for prefix '\(request.topicPrefix)'")
        case .domainError: throw JobBusy()
        case .otherError: throw Leak()
        case .internalRPCError: throw RPCError(.internal, "store unreachable", cause: Leak())
        case .logs:
            context.logger.notice("handled")
            return Rampart_Bus_V1_ReplayResponse()
        }
    }
    return router
}

private func payload(since: UInt64 = 41, prefix: String = "backup.", behaviour: Behaviour = .answer) -> Data {
    var request = Rampart_Bus_V1_ReplayRequest()
    request.sinceSeq = since
    request.topicPrefix = prefix
    request.limit = behaviour.rawValue
    return FrameCodec.serialize(request)
}

@Suite("ServiceRouter: every outcome becomes a bus status (docs/protocol.md §6, §7)")
struct ServiceRouterTests {
    let logger = Logger(label: "service-router-tests")

    @Test("OK: the handler's response comes back with status OK, the request id and the instance that answered")
    func okPath() async throws {
        let header = requestHeader(
            id: 31, method: replayMethod, deadline: unixMillis() + 60_000, metadata: ["caller": "cli@host"])
        let (reply, body) = await router().handle(
            header: header, payload: payload(), instanceId: "journal-1", logger: logger)
        #expect(reply.status == .ok)
        #expect(reply.requestID == 31)
        #expect(reply.answeredBy == "journal-1")
        #expect(reply.message.isEmpty)
        let response = try Rampart_Bus_V1_ReplayResponse(serializedBytes: body)
        #expect(response.lastSeq == 42)
        #expect(response.events.map(\.topic) == ["backup.answered"])
        #expect(response.events.first?.source == "\(replayMethod)|31|cli@host|\(header.deadlineUnixMs)")
    }

    @Test("OK without a deadline (0 = none); a caller that names no one is 'unknown'")
    func okWithoutDeadline() async throws {
        let (reply, body) = await router().handle(
            header: requestHeader(id: 1, method: replayMethod), payload: payload(since: 0), instanceId: "j",
            logger: logger)
        #expect(reply.status == .ok)
        let response = try Rampart_Bus_V1_ReplayResponse(serializedBytes: body)
        #expect(response.events.first?.source == "\(replayMethod)|1|unknown|0")
    }

    @Test("an unknown method gets UNIMPLEMENTED naming the method, and no payload")
    func unknownMethod() async {
        let (reply, body) = await router().handle(
            header: requestHeader(id: 2, method: "rampart.test.v1.Journal/Nope"), payload: payload(), instanceId: "j",
            logger: logger)
        #expect(reply.status == .unimplemented)
        #expect(reply.requestID == 2)
        #expect(reply.message.contains("rampart.test.v1.Journal/Nope"))
        #expect(body.isEmpty)
    }

    @Test("a payload that is not the request message gets INVALID_ARGUMENT naming the expected message type")
    func garbagePayload() async {
        let (reply, body) = await router().handle(
            header: requestHeader(id: 3, method: replayMethod), payload: Data([0x12, 0x10, 0x61]), instanceId: "j",
            logger: logger)
        #expect(reply.status == .invalidArgument)
        #expect(reply.message.contains("rampart.bus.v1.ReplayRequest"))
        #expect(body.isEmpty)
    }

    @Test("an RPCError thrown by the handler is sent with its own code and message")
    func rpcErrorMapped() async {
        let (reply, body) = await router().handle(
            header: requestHeader(id: 4, method: replayMethod), payload: payload(prefix: "x.", behaviour: .notFound),
            instanceId: "j", logger: logger)
        #expect(reply.status == .notFound)
        #expect(reply.message == "no journal for prefix 'x.'")
        #expect(reply.requestID == 4)
        #expect(body.isEmpty)
    }

    @Test("a domain error that knows its status (RPCErrorConvertible) is sent with that status")
    func domainErrorMapped() async {
        let (reply, _) = await router().handle(
            header: requestHeader(id: 5, method: replayMethod), payload: payload(behaviour: .domainError),
            instanceId: "j",
            logger: logger)
        #expect(reply.status == .failedPrecondition)
        #expect(reply.message == "job 12 is already running")
    }

    @Test("any other error becomes INTERNAL without its text on the wire; the text goes to the log")
    func otherErrorIsInternal() async {
        let record = LogRecord()
        let (reply, body) = await router().handle(
            header: requestHeader(id: 6, method: replayMethod), payload: payload(behaviour: .otherError),
            instanceId: "j",
            logger: recordingLogger(record))
        #expect(reply.status == .internal)
        #expect(!reply.message.contains("hunter2"))
        #expect(!reply.message.contains("db.internal"))
        #expect(reply.message.contains(replayMethod))
        #expect(body.isEmpty)
        #expect(record.text.contains("hunter2"), "the operator needs the cause in the log")
        #expect(record.all.contains { $0.level == .error && $0.metadata["request-id"] == "6" })
    }

    @Test("the handler's logger carries the method, request id, caller and trace id (made when asked for)")
    func handlerLoggerMetadata() async {
        let record = LogRecord()
        let (reply, _) = await router().handle(
            header: requestHeader(id: 9, method: replayMethod, metadata: ["caller": "cli@host", "trace-id": "t-123"]),
            payload: payload(behaviour: .logs), instanceId: "j", logger: recordingLogger(record))
        #expect(reply.status == .ok)
        let line = record.all.first { $0.message == "handled" }
        #expect(line?.metadata["method"] == "\(replayMethod)")
        #expect(line?.metadata["request-id"] == "9")
        #expect(line?.metadata["caller"] == "cli@host")
        #expect(line?.metadata["trace-id"] == "t-123")
    }

    @Test("an RPCError's cause never reaches the wire, only the log")
    func causeStaysInLog() async {
        let record = LogRecord()
        let (reply, _) = await router().handle(
            header: requestHeader(id: 7, method: replayMethod), payload: payload(behaviour: .internalRPCError),
            instanceId: "j", logger: recordingLogger(record))
        #expect(reply.status == .internal)
        #expect(reply.message == "store unreachable")
        #expect(record.text.contains("hunter2"))
    }

    @Test("a deadline already past gets DEADLINE_EXCEEDED without running the handler")
    func deadlinePassed() async {
        // The handler would answer OK; a DEADLINE_EXCEEDED status proves it never ran.
        let (reply, body) = await router().handle(
            header: requestHeader(id: 8, method: replayMethod, deadline: unixMillis() - 1), payload: payload(),
            instanceId: "j", logger: logger)
        #expect(reply.status == .deadlineExceeded)
        #expect(reply.requestID == 8)
        #expect(body.isEmpty)
    }

    @Test("methods lists the registered method names, sorted")
    func methodsListed() {
        var router = router()
        router.register(first) { (_: Rampart_Bus_V1_BrokerStatusRequest, _) in
            Rampart_Bus_V1_BrokerStatusResponse()
        }
        #expect(router.methods == [first.name, replay.name])
    }
}

@Suite("RPCError: status, message and cause (docs/protocol.md §7)")
struct RPCErrorTests {
    @Test("description is 'CODE: message' and holds no cause; debugDescription adds the cause")
    func descriptions() {
        let error = RPCError(.notFound, "no device fw1", cause: Leak())
        #expect(error.description == "NOT_FOUND: no device fw1")
        #expect(!error.description.contains("hunter2"))
        #expect(error.debugDescription == "NOT_FOUND: no device fw1 (cause: \(secret))")
        #expect(RPCError.invalidArgument("x").debugDescription == "INVALID_ARGUMENT: x")
    }

    @Test("only UNAVAILABLE is retryable unchanged")
    func retryable() {
        #expect(RPCError.unavailable("x").isRetryable)
        for code in Rampart_Bus_V1_StatusCode.allCases where code != .unavailable {
            #expect(!RPCError(code, "x").isRetryable, "\(code.name)")
        }
    }

    @Test("the factory functions set the canonical codes")
    func factories() {
        #expect(RPCError.invalidArgument("m").code == .invalidArgument)
        #expect(RPCError.notFound("m").code == .notFound)
        #expect(RPCError.alreadyExists("m").code == .alreadyExists)
        #expect(RPCError.failedPrecondition("m").code == .failedPrecondition)
        #expect(RPCError.unavailable("m").code == .unavailable)
        #expect(RPCError.internalError("m").code == .internal)
    }

    @Test("status code names are gRPC's canonical upper-case names")
    func codeNames() {
        let expected: [Rampart_Bus_V1_StatusCode: String] = [
            .ok: "OK", .cancelled: "CANCELLED", .unknown: "UNKNOWN", .invalidArgument: "INVALID_ARGUMENT",
            .deadlineExceeded: "DEADLINE_EXCEEDED", .notFound: "NOT_FOUND", .alreadyExists: "ALREADY_EXISTS",
            .permissionDenied: "PERMISSION_DENIED", .resourceExhausted: "RESOURCE_EXHAUSTED",
            .failedPrecondition: "FAILED_PRECONDITION", .aborted: "ABORTED", .outOfRange: "OUT_OF_RANGE",
            .unimplemented: "UNIMPLEMENTED", .internal: "INTERNAL", .unavailable: "UNAVAILABLE", .dataLoss: "DATA_LOSS",
            .unauthenticated: "UNAUTHENTICATED",
        ]
        #expect(Rampart_Bus_V1_StatusCode.allCases.count == expected.count)
        for code in Rampart_Bus_V1_StatusCode.allCases {
            #expect(code.name == expected[code], "\(code.rawValue)")
        }
        #expect(Rampart_Bus_V1_StatusCode.UNRECOGNIZED(99).name == "UNRECOGNIZED(99)")
    }
}
