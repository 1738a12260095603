import Foundation
import RampartAPI
import RampartBus
import RampartProto
import RampartTesting
import Testing

/// The routing id a ROUTER puts in front of what a peer sent.
private let peer = Data("peer-1")

/// `prefix` followed by `message` serialized: the first frame of every bus message (docs/protocol.md §3).
private func head(_ prefix: Data, _ body: Data) -> Data { prefix + body }
/// The first bytes of a service-instance frame: the tag and the command byte.
private func command(_ byte: UInt8) -> Data { BusProtocol.workerTag + Data([byte]) }

@Suite("FrameCodec: bus wire frames, protocol 2 (docs/protocol.md §3)")
struct FrameCodecRoundTripTests {
    @Test("a client request is two frames, RB2C ‖ RequestHeader and the payload, and decodes at the broker unchanged")
    func clientRequestRoundTrip() throws {
        var header = requestHeader(
            id: 42, method: InventoryAPI.listDevices.name, deadline: 1_700_000_000_123,
            metadata: ["caller": "cli@host", "trace-id": "t-1"])
        let payload = Data([0, 1, 2, 255])
        let sent = FrameCodec.clientRequest(service: "inventory", header: header, payload: payload)
        #expect(sent.count == 2)
        #expect(sent[0].prefix(4) == BusProtocol.clientTag)
        #expect(sent[1] == payload)
        let wire = try Rampart_Bus_V1_RequestHeader(serializedBytes: sent[0].dropFirst(4))
        #expect(wire.service == "inventory")

        header.service = "inventory"
        let decoded = FrameCodec.decodeAtBroker([peer] + sent)
        #expect(
            decoded == .success(.clientRequest(client: peer, service: "inventory", header: header, payload: payload)))
    }

    @Test("a client request with an empty payload frame keeps the empty payload")
    func clientRequestEmptyPayload() {
        var header = requestHeader(id: 1)
        let decoded = FrameCodec.decodeAtBroker(
            [peer] + FrameCodec.clientRequest(service: "s", header: header, payload: Data()))
        header.service = "s"
        #expect(decoded == .success(.clientRequest(client: peer, service: "s", header: header, payload: Data())))
    }

    @Test("READY is one frame, RB2W 01 ‖ WorkerInfo, and decodes to workerReady with the service it names")
    func readyRoundTrip() {
        let info = workerInfo("inventory-1", capacity: 8, service: "inventory")
        let sent = FrameCodec.workerReady(info)
        #expect(sent.count == 1 && sent[0].prefix(5) == command(1))
        #expect(
            FrameCodec.decodeAtBroker([peer] + sent)
                == .success(.workerReady(worker: peer, service: "inventory", info: info)))
    }

    @Test("REPLY carries the client in the header's route; the broker takes it out before the reply goes on")
    func replyRoundTrip() {
        var header = replyHeader(id: 7, status: .notFound, message: "no device fw9", by: "inventory-1")
        let client = Data([0, 0x80, 0, 0x41, 0xA7])
        header.route = client
        let sent = FrameCodec.workerReply(header, payload: Data("body"))
        #expect(sent.count == 2 && sent[0].prefix(5) == command(3))
        header.route = Data()
        #expect(
            FrameCodec.decodeAtBroker([peer] + sent)
                == .success(.workerReply(worker: peer, client: client, header: header, payload: Data("body"))))
    }

    @Test("HEARTBEAT and DISCONNECT are one 5-byte frame and decode at the broker and at an instance")
    func heartbeatAndDisconnect() {
        #expect(FrameCodec.workerSignal(.heartbeat) == [command(4)])
        #expect(
            FrameCodec.decodeAtBroker([peer] + FrameCodec.workerSignal(.heartbeat))
                == .success(.workerHeartbeat(worker: peer)))
        #expect(
            FrameCodec.decodeAtBroker([peer] + FrameCodec.workerSignal(.disconnect))
                == .success(.workerDisconnect(worker: peer)))
        #expect(FrameCodec.decodeAtWorker(Array(FrameCodec.signalToWorker(peer, .heartbeat).dropFirst())) == .heartbeat)
        #expect(FrameCodec.decodeAtWorker(Array(FrameCodec.signalToWorker(peer, .disconnect).dropFirst())) == .disconnect)
    }

    @Test("a broker reply built by replyToClient decodes at the client (routing id stripped by the ROUTER)")
    func clientReplyRoundTrip() throws {
        let header = replyHeader(id: 9, status: .unavailable, message: "no instance", by: "broker")
        let frames = FrameCodec.replyToClient(client: peer, header: header, payload: Data("p"))
        #expect(frames.count == 3 && frames.first == peer)
        let (decodedHeader, payload) = try #require(FrameCodec.decodeClientReply(Array(frames.dropFirst())))
        #expect(decodedHeader == header)
        #expect(payload == Data("p"))
    }

    @Test("a REQUEST to an instance names the client in the header's route and keeps header and payload")
    func workerRequestRoundTrip() {
        var header = requestHeader(id: 3, deadline: 99)
        let client = Data("client-a")
        let frames = FrameCodec.requestToWorker(Data("w1"), client: client, header: header, payload: Data("x"))
        #expect(frames.count == 3 && frames.first == Data("w1") && frames[1].prefix(5) == command(2))
        header.route = client
        #expect(
            FrameCodec.decodeAtWorker(Array(frames.dropFirst()))
                == .request(client: client, header: header, payload: Data("x")))
    }

    @Test("a route a client put in its own request header is replaced by the broker's")
    func clientRouteReplaced() throws {
        var header = requestHeader(id: 4)
        header.route = Data("someone-else")
        let frames = FrameCodec.requestToWorker(Data("w1"), client: Data("real"), header: header, payload: Data())
        guard case .request(let client, let decoded, _) = FrameCodec.decodeAtWorker(Array(frames.dropFirst())) else {
            Issue.record("REQUEST not decoded")
            return
        }
        #expect(client == Data("real") && decoded.route == Data("real"))
    }

    @Test("frames that are slices of a larger buffer (non-zero startIndex) decode like fresh Data")
    func slicedFrames() {
        let buffer = Data([9, 9, 9]) + command(4)
        let sliced = buffer[3...]
        #expect(sliced.startIndex == 3)
        #expect(FrameCodec.decodeAtBroker([peer, sliced]) == .success(.workerHeartbeat(worker: peer)))
        #expect(FrameCodec.decodeAtWorker([sliced]) == .heartbeat)
    }
}

/// A malformed frame set and what the broker must say about it.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    var name: String
    var frames: [Data]
    /// Words the reason must contain.
    var reason: String
    /// The service a client can be answered on, when it can be ("" when the service was not valid).
    var replyToService: String?

    var testDescription: String { name }
}

private func requestHead(service: String = "inventory", method: String = "rampart.test.v1.Test/Echo") -> Data {
    var header = requestHeader(id: 1, method: method)
    header.service = service
    return head(BusProtocol.clientTag, FrameCodec.serialize(header))
}

private let goodRequest = requestHead()
private let goodHeader = FrameCodec.serialize(requestHeader(id: 1))
private let goodReply: Data = {
    var header = replyHeader(id: 1)
    header.route = Data("c")
    return FrameCodec.serialize(header)
}()
private let goodInfo = FrameCodec.serialize(workerInfo("i", capacity: 1, service: "s"))
/// A RequestHeader/ReplyHeader that cannot be decoded: field 2 (a string) claims 16 bytes but holds 1.
private let truncatedProto = Data([0x12, 0x10, 0x61])
private let tag = BusProtocol.clientTag

private let malformedAtBroker: [MalformedCase] = [
    MalformedCase(name: "no frames", frames: [], reason: "fewer than 2 frames"),
    MalformedCase(name: "routing id only", frames: [peer], reason: "fewer than 2 frames"),
    MalformedCase(name: "empty routing id", frames: [Data(), goodRequest, Data()], reason: "fewer than 2 frames"),
    MalformedCase(
        name: "protocol 1 (empty delimiter first)", frames: [peer, Data(), Data("RB1C"), Data("s"), goodHeader, Data()],
        reason: "unknown protocol tag"),
    MalformedCase(name: "unknown protocol tag", frames: [peer, Data("RB3C") + goodHeader, Data()], reason: "unknown protocol tag"),
    MalformedCase(name: "tag cut short", frames: [peer, Data("RB2"), Data()], reason: "unknown protocol tag"),
    MalformedCase(
        name: "client request without a service", frames: [peer, head(tag, goodHeader), Data()],
        reason: "names no valid service", replyToService: ""),
    MalformedCase(
        name: "client service name longer than 256 bytes",
        frames: [peer, requestHead(service: String(repeating: "s", count: 257)), Data()],
        reason: "names no valid service", replyToService: ""),
    MalformedCase(
        name: "client request without payload frame", frames: [peer, goodRequest],
        reason: "has 1 frames, expected 2", replyToService: "inventory"),
    MalformedCase(
        name: "client request with an extra frame", frames: [peer, goodRequest, Data(), Data()],
        reason: "has 3 frames, expected 2", replyToService: "inventory"),
    MalformedCase(
        name: "client request with undecodable header", frames: [peer, head(tag, truncatedProto), Data()],
        reason: "not a valid RequestHeader"),
    MalformedCase(
        name: "client request with empty method", frames: [peer, requestHead(method: ""), Data()],
        reason: "names no method", replyToService: "inventory"),
    MalformedCase(name: "worker tag without command", frames: [peer, BusProtocol.workerTag], reason: "unknown worker command"),
    MalformedCase(name: "worker command 0", frames: [peer, command(0)], reason: "unknown worker command"),
    MalformedCase(name: "worker command 9", frames: [peer, command(9)], reason: "unknown worker command"),
    MalformedCase(name: "READY with an extra frame", frames: [peer, command(1) + goodInfo, Data()], reason: "malformed READY"),
    MalformedCase(
        name: "READY without a service", frames: [peer, command(1) + FrameCodec.serialize(workerInfo("i", capacity: 1))],
        reason: "malformed READY"),
    MalformedCase(name: "READY with undecodable WorkerInfo", frames: [peer, command(1) + truncatedProto], reason: "malformed READY"),
    MalformedCase(name: "REPLY without payload", frames: [peer, command(3) + goodReply], reason: "malformed REPLY"),
    MalformedCase(
        name: "REPLY without a route", frames: [peer, command(3) + FrameCodec.serialize(replyHeader(id: 1)), Data()],
        reason: "malformed REPLY"),
    MalformedCase(name: "REPLY with undecodable header", frames: [peer, command(3) + truncatedProto, Data()], reason: "malformed REPLY"),
    MalformedCase(name: "HEARTBEAT with an extra frame", frames: [peer, command(4), Data()], reason: "malformed HEARTBEAT"),
    MalformedCase(name: "HEARTBEAT with a body", frames: [peer, command(4) + Data([0])], reason: "malformed HEARTBEAT"),
    MalformedCase(name: "DISCONNECT with an extra frame", frames: [peer, command(5), Data("x")], reason: "malformed DISCONNECT"),
    MalformedCase(name: "REQUEST sent to the broker", frames: [peer, command(2) + goodHeader, Data()], reason: "sent by the broker"),
]

private let refusedAtWorkerCases: [(String, [Data])] = {
    var cases: [(String, [Data])] = []
    cases.append(("no frames", []))
    cases.append(("protocol 1", [Data(), BusProtocol.workerTag, Data([4])]))
    cases.append(("client tag", [tag + Data([4])]))
    cases.append(("unknown command", [command(7)]))
    cases.append(("heartbeat with a body", [command(4) + Data([4])]))
    cases.append(("READY sent to an instance", [command(1) + goodInfo]))
    cases.append(("REPLY sent to an instance", [command(3) + goodReply, Data()]))
    cases.append(("REQUEST without payload", [command(2) + goodReply]))
    cases.append(("REQUEST without a route", [command(2) + goodHeader, Data()]))
    cases.append(("REQUEST with an undecodable header", [command(2) + truncatedProto, Data()]))
    return cases
}()

private let refusedAtClientCases: [(String, [Data])] = {
    var cases: [(String, [Data])] = []
    cases.append(("one frame", [tag + goodReply]))
    cases.append(("three frames", [tag + goodReply, Data(), Data()]))
    cases.append(("protocol 1", [Data(), Data("RB1C"), Data("s"), goodReply, Data()]))
    cases.append(("worker tag", [command(3) + goodReply, Data()]))
    cases.append(("undecodable header", [tag + truncatedProto, Data()]))
    return cases
}()

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
            let replyTo = try #require(error.replyTo, "a client whose header could be read must be answered")
            #expect(replyTo.client == peer)
            #expect(replyTo.service == service)
            #expect(replyTo.requestId == 1)
        } else {
            #expect(error.replyTo == nil)
        }
    }

    @Test(
        "decodeAtWorker returns nil for frames an instance cannot act on",
        arguments: refusedAtWorkerCases)
    func refusedAtWorker(_ name: String, _ frames: [Data]) {
        #expect(FrameCodec.decodeAtWorker(frames) == nil, "\(name)")
    }

    @Test(
        "decodeClientReply returns nil for anything but [RB2C ‖ ReplyHeader, payload]",
        arguments: refusedAtClientCases)
    func refusedAtClient(_ name: String, _ frames: [Data]) {
        #expect(FrameCodec.decodeClientReply(frames) == nil, "\(name)")
    }
}

@Suite("FrameCodec: random and truncated input never crashes the decoders")
struct FrameCodecFuzzTests {
    /// Well-formed frame sets as the broker and an instance receive them.
    static func validBrokerInputs() -> [[Data]] {
        var reply = replyHeader(id: 5)
        reply.route = Data("client")
        return [
            [peer]
                + FrameCodec.clientRequest(
                    service: "inventory", header: requestHeader(id: 77, deadline: 5), payload: Data("payload")),
            [peer] + FrameCodec.workerReady(workerInfo("inv-1", capacity: 4, service: "inventory")),
            [peer] + FrameCodec.workerReply(reply, payload: Data("answer")),
            [peer] + FrameCodec.workerSignal(.heartbeat),
            [peer] + FrameCodec.workerSignal(.disconnect),
        ]
    }

    static func validWorkerInputs() -> [[Data]] {
        [
            Array(FrameCodec.requestToWorker(peer, client: Data("client"), header: requestHeader(id: 1), payload: Data("p")).dropFirst()),
            Array(FrameCodec.signalToWorker(peer, .heartbeat).dropFirst()),
            Array(FrameCodec.signalToWorker(peer, .disconnect).dropFirst()),
        ]
    }

    static func randomFrame(_ rng: inout SplitMix64) -> Data {
        switch rng.next() % 6 {
        case 0: return Data()
        case 1: return BusProtocol.clientTag
        case 2: return BusProtocol.workerTag + Data([UInt8(rng.next() % 7)])
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
                #expect(brokerFrames.count >= 2 && brokerFrames[1].count >= 4, "round \(round): \(brokerFrames)")
                switch message {
                case .clientRequest(let client, let service, let header, _):
                    #expect(
                        brokerFrames.count == 3 && client == brokerFrames[0] && !service.isEmpty
                            && !header.method.isEmpty && brokerFrames[1].prefix(4) == BusProtocol.clientTag)
                case .workerReady(let worker, let service, _):
                    #expect(brokerFrames.count == 2 && worker == brokerFrames[0] && !service.isEmpty)
                case .workerReply(_, let client, _, _):
                    #expect(brokerFrames.count == 3 && !client.isEmpty)
                case .workerHeartbeat, .workerDisconnect:
                    #expect(brokerFrames.count == 2 && brokerFrames[1].count == 5)
                }
            case .failure(let error):
                refused += 1
                #expect(!error.reason.isEmpty)
                if let replyTo = error.replyTo {
                    #expect(replyTo.client == brokerFrames[0] && brokerFrames[1].prefix(4) == BusProtocol.clientTag)
                }
            }

            let workerFrames = Self.mutate(worker[round % worker.count], &rng)
            if let inbound = FrameCodec.decodeAtWorker(workerFrames) {
                #expect(workerFrames[0].prefix(4) == BusProtocol.workerTag)
                if case .request(let client, _, _) = inbound {
                    #expect(workerFrames.count == 2 && !client.isEmpty)
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

@Suite("Trace ids: a UUID per call without a system call per call")
struct TraceIdTests {
    @Test("ids are version-4-shaped UUIDs, in lower case, that Foundation parses")
    func shape() throws {
        let ids = TraceIds()
        for n in [UInt64(0), 1, 42, .max] {
            let id = ids.make(n)
            #expect(id.count == 36)
            #expect(id == id.lowercased())
            let uuid = try #require(UUID(uuidString: id), "\(id)")
            #expect(uuid.uuidString.lowercased() == id)
            let characters = Array(id)
            #expect(characters[14] == "4", "version nibble of \(id)")
            #expect("89ab".contains(characters[19]), "variant of \(id)")
        }
    }

    @Test("one client never repeats an id; another client's ids differ")
    func unique() {
        let first = TraceIds()
        let made = Set((0..<20_000).map { first.make(UInt64($0)) })
        #expect(made.count == 20_000)
        let second = TraceIds()
        #expect(made.isDisjoint(with: (0..<20_000).map { second.make(UInt64($0)) }))
    }

    @Test("the same seeds and number give the same id (nothing else goes in)")
    func deterministic() {
        let a = TraceIds(seeds: (1, 2))
        let b = TraceIds(seeds: (1, 2))
        #expect(a.make(7) == b.make(7))
        #expect(a.make(7) != a.make(8))
    }
}
