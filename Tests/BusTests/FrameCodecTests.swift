import Foundation
import RampartBus
import RampartProto
import RampartTesting
import Testing

/// The routing id a ROUTER puts in front of what a peer sent.
private let peer = Data("peer-1")

@Suite("FrameCodec: bus wire frames (DESIGN §2)")
struct FrameCodecRoundTripTests {
    @Test("a client request built by clientRequest decodes at the broker to the same service, header and payload")
    func clientRequestRoundTrip() throws {
        let header = requestHeader(
            id: 42, method: "rampart.inventory.v1.Inventory/ListDevices", deadline: 1_700_000_000_123,
            metadata: ["caller": "cli@host", "trace-id": "t-1"])
        let payload = Data([0, 1, 2, 255])
        let sent = FrameCodec.clientRequest(service: "inventory", header: header, payload: payload)
        #expect(sent.count == 5)
        #expect(sent[0].isEmpty)
        #expect(sent[1] == BusProtocol.clientTag)

        let decoded = FrameCodec.decodeAtBroker([peer] + sent)
        #expect(
            decoded == .success(.clientRequest(client: peer, service: "inventory", header: header, payload: payload)))
    }

    @Test("a client request with an empty payload frame keeps the empty payload")
    func clientRequestEmptyPayload() {
        let header = requestHeader(id: 1)
        let decoded = FrameCodec.decodeAtBroker(
            [peer] + FrameCodec.clientRequest(service: "s", header: header, payload: Data()))
        #expect(decoded == .success(.clientRequest(client: peer, service: "s", header: header, payload: Data())))
    }

    @Test("READY from a service instance decodes to workerReady with its service and WorkerInfo")
    func readyRoundTrip() {
        let info = workerInfo("inventory-1", capacity: 8)
        let sent = FrameCodec.workerCommand(.ready, [Data("inventory"), FrameCodec.serialize(info)])
        #expect(
            FrameCodec.decodeAtBroker([peer] + sent)
                == .success(.workerReady(worker: peer, service: "inventory", info: info)))
    }

    @Test("REPLY from a service instance decodes to workerReply naming the client, header and payload")
    func replyRoundTrip() {
        let header = replyHeader(id: 7, status: .notFound, message: "no device fw9", by: "inventory-1")
        let client = Data([0, 0x80, 0, 0x41, 0xA7])
        let sent = FrameCodec.workerCommand(.reply, [client, FrameCodec.serialize(header), Data("body")])
        #expect(
            FrameCodec.decodeAtBroker([peer] + sent)
                == .success(.workerReply(worker: peer, client: client, header: header, payload: Data("body"))))
    }

    @Test("HEARTBEAT and DISCONNECT from a service instance decode at the broker")
    func heartbeatAndDisconnect() {
        #expect(
            FrameCodec.decodeAtBroker([peer] + FrameCodec.workerCommand(.heartbeat))
                == .success(.workerHeartbeat(worker: peer)))
        #expect(
            FrameCodec.decodeAtBroker([peer] + FrameCodec.workerCommand(.disconnect))
                == .success(.workerDisconnect(worker: peer)))
    }

    @Test("a broker reply built by replyToClient decodes at the client (routing id stripped by the ROUTER)")
    func clientReplyRoundTrip() throws {
        let header = replyHeader(id: 9, status: .unavailable, message: "no instance", by: "broker")
        let frames = FrameCodec.replyToClient(
            client: peer, service: "inventory", header: FrameCodec.serialize(header), payload: Data("p"))
        #expect(frames.first == peer)
        let (service, decodedHeader, payload) = try #require(FrameCodec.decodeClientReply(Array(frames.dropFirst())))
        #expect(service == "inventory")
        #expect(decodedHeader == header)
        #expect(payload == Data("p"))
    }

    @Test("a REQUEST built by toWorker decodes at the service instance with client, header and payload")
    func workerRequestRoundTrip() {
        let header = requestHeader(id: 3, deadline: 99)
        let client = Data("client-a")
        let frames = FrameCodec.toWorker(Data("w1"), .request, [client, FrameCodec.serialize(header), Data("x")])
        #expect(frames.first == Data("w1"))
        #expect(
            FrameCodec.decodeAtWorker(Array(frames.dropFirst()))
                == .request(client: client, header: header, payload: Data("x")))
    }

    @Test("HEARTBEAT and DISCONNECT from the broker decode at the service instance")
    func workerHeartbeatAndDisconnect() {
        #expect(FrameCodec.decodeAtWorker(Array(FrameCodec.toWorker(peer, .heartbeat).dropFirst())) == .heartbeat)
        #expect(FrameCodec.decodeAtWorker(Array(FrameCodec.toWorker(peer, .disconnect).dropFirst())) == .disconnect)
    }

    @Test("frames that are slices of a larger buffer (non-zero startIndex) decode like fresh Data")
    func slicedFrames() {
        let buffer = Data([9, 9, 9]) + Data([WorkerCommand.heartbeat.rawValue])
        let command = buffer[3...]
        #expect(command.startIndex == 3)
        #expect(
            FrameCodec.decodeAtBroker([peer, Data(), BusProtocol.workerTag, command])
                == .success(.workerHeartbeat(worker: peer)))
        #expect(FrameCodec.decodeAtWorker([Data(), BusProtocol.workerTag, command]) == .heartbeat)
    }
}

/// A malformed frame set and what the broker must say about it.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    var name: String
    var frames: [Data]
    /// Words the reason must contain.
    var reason: String
    /// The service a client can be answered on, when it can be.
    var replyToService: String?

    var testDescription: String { name }
}

private let goodHeader = FrameCodec.serialize(requestHeader(id: 1))
private let goodReply = FrameCodec.serialize(replyHeader(id: 1))
private let goodInfo = FrameCodec.serialize(workerInfo("i", capacity: 1))
/// A RequestHeader/ReplyHeader that cannot be decoded: field 2 (a string) claims 16 bytes but holds 1.
private let truncatedProto = Data([0x12, 0x10, 0x61])
private let tag = BusProtocol.clientTag
private let wtag = BusProtocol.workerTag

private let malformedAtBroker: [MalformedCase] = [
    MalformedCase(name: "no frames", frames: [], reason: "fewer than 3 frames"),
    MalformedCase(name: "two frames", frames: [peer, Data()], reason: "fewer than 3 frames"),
    MalformedCase(
        name: "empty routing id", frames: [Data(), Data(), tag, Data("s"), goodHeader, Data()],
        reason: "fewer than 3 frames"),
    MalformedCase(
        name: "missing empty delimiter", frames: [peer, tag, Data("s"), goodHeader, Data(), Data()],
        reason: "missing empty delimiter"),
    MalformedCase(
        name: "unknown protocol tag", frames: [peer, Data(), Data("RB2C"), Data("s"), goodHeader, Data()],
        reason: "unknown protocol tag"),
    MalformedCase(
        name: "client tag without service", frames: [peer, Data(), tag], reason: "without a valid service name"),
    MalformedCase(
        name: "client empty service name", frames: [peer, Data(), tag, Data(), goodHeader, Data()],
        reason: "without a valid service name"),
    MalformedCase(
        name: "client service name longer than 256 bytes",
        frames: [peer, Data(), tag, Data(String(repeating: "s", count: 257)), goodHeader, Data()],
        reason: "without a valid service name"),
    MalformedCase(
        name: "client service name not UTF-8", frames: [peer, Data(), tag, Data([0xFF, 0xFE]), goodHeader, Data()],
        reason: "without a valid service name"),
    MalformedCase(
        name: "client request without payload frame", frames: [peer, Data(), tag, Data("inventory"), goodHeader],
        reason: "has 4 frames, expected 5", replyToService: "inventory"),
    MalformedCase(
        name: "client request with an extra frame",
        frames: [peer, Data(), tag, Data("inventory"), goodHeader, Data(), Data()], reason: "has 6 frames, expected 5",
        replyToService: "inventory"),
    MalformedCase(
        name: "client request with undecodable header",
        frames: [peer, Data(), tag, Data("inventory"), truncatedProto, Data()],
        reason: "not a valid RequestHeader", replyToService: "inventory"),
    MalformedCase(
        name: "client request with empty method",
        frames: [peer, Data(), tag, Data("inventory"), FrameCodec.serialize(requestHeader(id: 5, method: "")), Data()],
        reason: "names no method", replyToService: "inventory"),
    MalformedCase(name: "worker tag without command", frames: [peer, Data(), wtag], reason: "unknown worker command"),
    MalformedCase(name: "worker command 0", frames: [peer, Data(), wtag, Data([0])], reason: "unknown worker command"),
    MalformedCase(name: "worker command 9", frames: [peer, Data(), wtag, Data([9])], reason: "unknown worker command"),
    MalformedCase(
        name: "worker command of two bytes", frames: [peer, Data(), wtag, Data([4, 0])],
        reason: "unknown worker command"),
    MalformedCase(
        name: "worker empty command frame", frames: [peer, Data(), wtag, Data()], reason: "unknown worker command"),
    MalformedCase(
        name: "READY without WorkerInfo", frames: [peer, Data(), wtag, Data([1]), Data("s")], reason: "malformed READY"),
    MalformedCase(
        name: "READY with empty service", frames: [peer, Data(), wtag, Data([1]), Data(), goodInfo],
        reason: "malformed READY"),
    MalformedCase(
        name: "READY with undecodable WorkerInfo", frames: [peer, Data(), wtag, Data([1]), Data("s"), truncatedProto],
        reason: "malformed READY"),
    MalformedCase(
        name: "REPLY without payload", frames: [peer, Data(), wtag, Data([3]), Data("c"), goodReply],
        reason: "malformed REPLY"),
    MalformedCase(
        name: "REPLY with empty client", frames: [peer, Data(), wtag, Data([3]), Data(), goodReply, Data()],
        reason: "malformed REPLY"),
    MalformedCase(
        name: "REPLY with undecodable header",
        frames: [peer, Data(), wtag, Data([3]), Data("c"), truncatedProto, Data()],
        reason: "malformed REPLY"),
    MalformedCase(
        name: "HEARTBEAT with an extra frame", frames: [peer, Data(), wtag, Data([4]), Data()],
        reason: "malformed HEARTBEAT"),
    MalformedCase(
        name: "DISCONNECT with an extra frame", frames: [peer, Data(), wtag, Data([5]), Data("x")],
        reason: "malformed DISCONNECT"),
    MalformedCase(
        name: "REQUEST sent to the broker", frames: [peer, Data(), wtag, Data([2]), Data("c"), goodHeader, Data()],
        reason: "sent by the broker"),
]

@Suite("FrameCodec: malformed frame sets are refused, never guessed at")
struct FrameCodecMalformedTests {
    @Test(
        "decodeAtBroker refuses a malformed frame set with a reason, and a replyTo only for a client it can answer",
        arguments: malformedAtBroker)
    func refusedAtBroker(_ bad: MalformedCase) throws {
        guard case .failure(let error) = FrameCodec.decodeAtBroker(bad.frames) else {
            Issue.record("decoded although malformed: \(bad.name)")
            return
        }
        #expect(error.reason.contains(bad.reason), "reason was '\(error.reason)'")
        if let service = bad.replyToService {
            let replyTo = try #require(error.replyTo, "a client that named its service must be answered")
            #expect(replyTo.client == peer)
            #expect(replyTo.service == service)
        } else {
            #expect(error.replyTo == nil)
        }
    }

    @Test(
        "decodeAtWorker returns nil for frames an instance cannot act on",
        arguments: [
            ("no frames", [Data]()),
            ("missing delimiter", [wtag, Data([4]), Data()]),
            ("client tag", [Data(), tag, Data([4])]),
            ("unknown command", [Data(), wtag, Data([7])]),
            ("two-byte command", [Data(), wtag, Data([4, 4])]),
            ("READY sent to an instance", [Data(), wtag, Data([1]), Data("s"), goodInfo]),
            ("REPLY sent to an instance", [Data(), wtag, Data([3]), Data("c"), goodReply, Data()]),
            ("REQUEST without payload", [Data(), wtag, Data([2]), Data("c"), goodHeader]),
            ("REQUEST with empty client", [Data(), wtag, Data([2]), Data(), goodHeader, Data()]),
        ])
    func refusedAtWorker(_ name: String, _ frames: [Data]) {
        #expect(FrameCodec.decodeAtWorker(frames) == nil, "\(name)")
    }

    @Test("decodeAtWorker turns a REQUEST with an undecodable header into malformedRequest naming the client")
    func malformedRequestAtWorker() {
        let decoded = FrameCodec.decodeAtWorker([Data(), wtag, Data([2]), Data("client-b"), truncatedProto, Data()])
        guard case .malformedRequest(let client, let reason) = decoded else {
            Issue.record("expected malformedRequest, got \(String(describing: decoded))")
            return
        }
        #expect(client == Data("client-b"))
        #expect(reason.contains("RequestHeader"))
    }

    @Test(
        "decodeClientReply returns nil for anything but [\"\", RB1C, service, ReplyHeader, payload]",
        arguments: [
            ("four frames", [Data(), tag, Data("s"), goodReply]),
            ("six frames", [Data(), tag, Data("s"), goodReply, Data(), Data()]),
            ("no delimiter", [Data("x"), tag, Data("s"), goodReply, Data()]),
            ("worker tag", [Data(), wtag, Data("s"), goodReply, Data()]),
            ("service not UTF-8", [Data(), tag, Data([0xC3]), goodReply, Data()]),
            ("undecodable header", [Data(), tag, Data("s"), truncatedProto, Data()]),
        ])
    func refusedAtClient(_ name: String, _ frames: [Data]) {
        #expect(FrameCodec.decodeClientReply(frames) == nil, "\(name)")
    }
}

@Suite("FrameCodec: random and truncated input never crashes the decoders")
struct FrameCodecFuzzTests {
    /// Well-formed frame sets as the broker and an instance receive them.
    static func validBrokerInputs() -> [[Data]] {
        [
            [peer]
                + FrameCodec.clientRequest(
                    service: "inventory", header: requestHeader(id: 77, deadline: 5), payload: Data("payload")),
            [peer]
                + FrameCodec.workerCommand(
                    .ready, [Data("inventory"), FrameCodec.serialize(workerInfo("inv-1", capacity: 4))]),
            [peer] + FrameCodec.workerCommand(.reply, [Data("client"), goodReply, Data("answer")]),
            [peer] + FrameCodec.workerCommand(.heartbeat),
            [peer] + FrameCodec.workerCommand(.disconnect),
        ]
    }

    static func validWorkerInputs() -> [[Data]] {
        [
            Array(FrameCodec.toWorker(peer, .request, [Data("client"), goodHeader, Data("payload")]).dropFirst()),
            Array(FrameCodec.toWorker(peer, .heartbeat).dropFirst()),
            Array(FrameCodec.toWorker(peer, .disconnect).dropFirst()),
        ]
    }

    static func randomFrame(_ rng: inout SplitMix64) -> Data {
        switch rng.next() % 6 {
        case 0: return Data()
        case 1: return BusProtocol.clientTag
        case 2: return BusProtocol.workerTag
        case 3: return Data([UInt8(rng.next() % 7)])
        default:
            let count = Int(rng.next() % 40)
            return Data((0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
    }

    /// A valid frame set cut short, with one frame's bytes cut or flipped, or frames made up from nothing.
    static func mutate(_ frames: [Data], _ rng: inout SplitMix64) -> [Data] {
        var frames = frames
        switch rng.next() % 4 {
        case 0:
            frames = Array(frames.prefix(Int(rng.next() % UInt64(frames.count + 1))))
        case 1 where !frames.isEmpty:
            let index = Int(rng.next() % UInt64(frames.count))
            frames[index] = frames[index].prefix(Int(rng.next() % UInt64(frames[index].count + 1)))
        case 2 where !frames.isEmpty:
            let index = Int(rng.next() % UInt64(frames.count))
            if !frames[index].isEmpty {
                let byte = frames[index].startIndex + Int(rng.next() % UInt64(frames[index].count))
                frames[index][byte] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            }
        default:
            frames = (0..<Int(rng.next() % 9)).map { _ in randomFrame(&rng) }
        }
        return frames
    }

    @Test(
        "2,000 seeded random and truncated frame sets: decodeAtBroker and decodeAtWorker return, and what they accept is well-formed"
    )
    func fuzzDecoders() {
        var rng = SplitMix64(seed: 0x5EED_B005)
        let broker = Self.validBrokerInputs()
        let worker = Self.validWorkerInputs()
        var accepted = 0
        var refused = 0
        for round in 0..<2_000 {
            let brokerFrames = Self.mutate(broker[round % broker.count], &rng)
            switch FrameCodec.decodeAtBroker(brokerFrames) {
            case .success(let message):
                accepted += 1
                #expect(brokerFrames.count >= 4 && brokerFrames[1].isEmpty, "round \(round): \(brokerFrames)")
                switch message {
                case .clientRequest(let client, let service, let header, _):
                    #expect(
                        brokerFrames.count == 6 && client == brokerFrames[0] && !service.isEmpty
                            && !header.method.isEmpty)
                case .workerReady(let worker, let service, _):
                    #expect(brokerFrames.count == 6 && worker == brokerFrames[0] && !service.isEmpty)
                case .workerReply(_, let client, _, _):
                    #expect(brokerFrames.count == 7 && !client.isEmpty)
                case .workerHeartbeat, .workerDisconnect:
                    #expect(brokerFrames.count == 4)
                }
            case .failure(let error):
                refused += 1
                #expect(!error.reason.isEmpty)
                if let replyTo = error.replyTo {
                    #expect(replyTo.client == brokerFrames[0] && brokerFrames[2] == BusProtocol.clientTag)
                }
            }

            let workerFrames = Self.mutate(worker[round % worker.count], &rng)
            if let inbound = FrameCodec.decodeAtWorker(workerFrames) {
                #expect(workerFrames.count >= 3 && workerFrames[0].isEmpty && workerFrames[1] == BusProtocol.workerTag)
                if case .request(let client, _, _) = inbound {
                    #expect(workerFrames.count == 6 && !client.isEmpty)
                }
            }
        }
        // The mix must exercise both outcomes, or the property says little.
        #expect(accepted > 100)
        #expect(refused > 500)
    }

    @Test("every strict prefix of a well-formed frame set is refused by the decoder that accepts the whole")
    func truncationIsRefused() {
        for frames in Self.validBrokerInputs() {
            guard case .success = FrameCodec.decodeAtBroker(frames) else {
                Issue.record("well-formed input refused: \(frames)")
                continue
            }
            for length in 0..<frames.count {
                guard case .failure = FrameCodec.decodeAtBroker(Array(frames.prefix(length))) else {
                    Issue.record("prefix of \(length) frames of \(frames) accepted")
                    continue
                }
            }
        }
        for frames in Self.validWorkerInputs() {
            #expect(FrameCodec.decodeAtWorker(frames) != nil)
            for length in 0..<frames.count {
                #expect(FrameCodec.decodeAtWorker(Array(frames.prefix(length))) == nil, "prefix \(length) of \(frames)")
            }
        }
    }
}
