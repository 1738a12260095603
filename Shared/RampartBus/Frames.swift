import Foundation
import RampartAPI
import RampartProto
import SwiftProtobuf

/// The bus wire protocol, version 2 (docs/protocol.md §3): every message is one or two frames. The
/// first frame is a 4-byte tag (and, on the instance side, a command byte) followed by a serialized
/// protobuf header; the second, when there is one, is the method's payload, never decoded by the
/// broker. Few frames matter: with CURVE libzmq encrypts every frame as a message of its own.
///
/// Client (DEALER) <-> broker (ROUTER):
///   request  ["RB2C" ‖ RequestHeader(service, …), payload]
///   reply    ["RB2C" ‖ ReplyHeader, payload]
/// Service instance (DEALER) <-> broker:
///   READY      ["RB2W" 0x01 ‖ WorkerInfo(service, …)]            instance -> broker
///   REQUEST    ["RB2W" 0x02 ‖ RequestHeader(route, …), payload]  broker -> instance
///   REPLY      ["RB2W" 0x03 ‖ ReplyHeader(route, …), payload]    instance -> broker
///   HEARTBEAT  ["RB2W" 0x04]                                     both ways
///   DISCONNECT ["RB2W" 0x05]                                     both ways
/// The ROUTER sees one more frame in front: the peer's routing id. `route` carries a client's routing
/// id through the instance and back.
public enum BusProtocol {
    /// Tag of client messages.
    public static let clientTag = Data("RB2C".utf8)
    /// Tag of service-instance messages.
    public static let workerTag = Data("RB2W".utf8)
    /// The largest single frame the broker and instances accept (bytes; libzmq's ZMQ_MAXMSGSIZE is per
    /// frame); a larger frame drops the sender's connection without a reply.
    public static let maxMessageSize: Int64 = 16 << 20
    /// The service name the broker answers itself (`Broker/Status`).
    public static let brokerService = BrokerAPI.serviceName
    /// The service name of the event journal (`Journal/Replay`, `Journal/Info`).
    public static let journalService = JournalAPI.serviceName
    /// The topic of the event stream's heartbeats (the journal's head once a second; never journaled).
    public static let eventHeartbeatTopic = "$heartbeat"
    /// The prefix of every device's service: "device/<device id>", served by that device's agent only.
    public static let deviceServicePrefix = "device/"

    /// The bus service of the device with this id.
    public static func deviceService(_ deviceId: String) -> String { deviceServicePrefix + deviceId }
}

/// Commands of the service-instance side of the protocol.
public enum WorkerCommand: UInt8, Sendable {
    case ready = 1
    case request = 2
    case reply = 3
    case heartbeat = 4
    case disconnect = 5
}

/// A message the broker received, decoded from its frames (routing id first).
public enum BrokerInbound: Equatable, Sendable {
    case clientRequest(client: Data, service: String, header: Rampart_Bus_V1_RequestHeader, payload: Data)
    case workerReady(worker: Data, service: String, info: Rampart_Bus_V1_WorkerInfo)
    case workerReply(worker: Data, client: Data, header: Rampart_Bus_V1_ReplyHeader, payload: Data)
    case workerHeartbeat(worker: Data)
    case workerDisconnect(worker: Data)
}

/// Why a message was not understood; `replyTo` is set when the sender is a client that can be told.
public struct MalformedMessage: Error, Equatable, Sendable {
    /// Who to tell: a client, its service frame and, when the header could be read, its request id.
    public struct ReplyTo: Equatable, Sendable {
        public var client: Data
        public var service: String
        public var requestId: UInt64 = 0
    }

    public var reason: String
    public var replyTo: ReplyTo?
}

/// Pure encoding and decoding of bus frames; no sockets.
public enum FrameCodec {
    /// Longest service name accepted.
    static let maxServiceName = 256

    /// Decodes what a ROUTER received (routing id first) into a broker message, or explains why not.
    public static func decodeAtBroker(_ frames: [Data]) -> Result<BrokerInbound, MalformedMessage> {
        guard frames.count >= 2, let peer = frames.first, !peer.isEmpty else {
            return .failure(MalformedMessage(reason: "fewer than 2 frames"))
        }
        let head = frames[1]
        if hasPrefix(head, BusProtocol.clientTag) {
            guard let header = try? Rampart_Bus_V1_RequestHeader(serializedBytes: head.dropFirst(4)) else {
                return .failure(MalformedMessage(reason: "request header is not a valid RequestHeader"))
            }
            guard let service = validServiceName(header.service) else {
                return .failure(
                    MalformedMessage(
                        reason: "request header names no valid service (1–\(maxServiceName) bytes)",
                        replyTo: .init(client: peer, service: "", requestId: header.requestID)))
            }
            let replyTo = MalformedMessage.ReplyTo(client: peer, service: service, requestId: header.requestID)
            guard frames.count == 3 else {
                return .failure(
                    MalformedMessage(reason: "client request has \(frames.count - 1) frames, expected 2", replyTo: replyTo))
            }
            guard !header.method.isEmpty else {
                return .failure(MalformedMessage(reason: "request header names no method", replyTo: replyTo))
            }
            return .success(.clientRequest(client: peer, service: service, header: header, payload: frames[2]))
        }
        guard hasPrefix(head, BusProtocol.workerTag) else {
            return .failure(MalformedMessage(reason: "unknown protocol tag"))
        }
        guard head.count >= 5, let command = WorkerCommand(rawValue: head[head.startIndex + 4]) else {
            return .failure(MalformedMessage(reason: "unknown worker command"))
        }
        let body = head.dropFirst(5)
        switch command {
        case .ready:
            guard frames.count == 2, let info = try? Rampart_Bus_V1_WorkerInfo(serializedBytes: body),
                let service = validServiceName(info.service)
            else { return .failure(MalformedMessage(reason: "malformed READY")) }
            return .success(.workerReady(worker: peer, service: service, info: info))
        case .reply:
            guard frames.count == 3, var header = try? Rampart_Bus_V1_ReplyHeader(serializedBytes: body),
                !header.route.isEmpty
            else { return .failure(MalformedMessage(reason: "malformed REPLY")) }
            let client = header.route
            header.route = Data()
            return .success(.workerReply(worker: peer, client: client, header: header, payload: frames[2]))
        case .heartbeat:
            return frames.count == 2 && body.isEmpty
                ? .success(.workerHeartbeat(worker: peer)) : .failure(MalformedMessage(reason: "malformed HEARTBEAT"))
        case .disconnect:
            return frames.count == 2 && body.isEmpty
                ? .success(.workerDisconnect(worker: peer)) : .failure(MalformedMessage(reason: "malformed DISCONNECT"))
        case .request:
            return .failure(MalformedMessage(reason: "REQUEST is sent by the broker, not to it"))
        }
    }

    private static func validServiceName(_ name: String) -> String? {
        let bytes = name.utf8.count
        return bytes > 0 && bytes <= maxServiceName ? name : nil
    }

    /// Whether `frame` starts with `tag`, compared as raw bytes (`prefix(_:).elementsEqual` went through
    /// generic sequence iteration: about 1 µs per message in the broker; docs/benchmarks.md, "Bus round trips").
    private static func hasPrefix(_ frame: Data, _ tag: Data) -> Bool {
        guard frame.count >= tag.count else { return false }
        return frame.withUnsafeBytes { frameBytes in
            tag.withUnsafeBytes { tagBytes in memcmp(frameBytes.baseAddress!, tagBytes.baseAddress!, tagBytes.count) == 0 }
        }
    }

    /// `prefix` followed by `message` serialized, in one frame.
    static func head(_ prefix: Data, _ message: some SwiftProtobuf.Message) -> Data {
        var frame = prefix
        frame.append(serialize(message))
        return frame
    }

    // MARK: client side

    /// The frames a client sends (DEALER: no routing id); `header.service` is set to `service`.
    public static func clientRequest(service: String, header: Rampart_Bus_V1_RequestHeader, payload: Data) -> [Data] {
        var header = header
        header.service = service
        return [head(BusProtocol.clientTag, header), payload]
    }

    /// Decodes a reply a client received: (header, payload).
    public static func decodeClientReply(_ frames: [Data]) -> (Rampart_Bus_V1_ReplyHeader, Data)? {
        guard frames.count == 2, hasPrefix(frames[0], BusProtocol.clientTag),
            let header = try? Rampart_Bus_V1_ReplyHeader(serializedBytes: frames[0].dropFirst(4))
        else { return nil }
        return (header, frames[1])
    }

    /// The frames the broker sends a client (routing id first).
    public static func replyToClient(client: Data, header: Rampart_Bus_V1_ReplyHeader, payload: Data) -> [Data] {
        [client, head(BusProtocol.clientTag, header), payload]
    }

    // MARK: worker side

    /// The command prefix of a service-instance frame: the tag and the command byte.
    private static func workerPrefix(_ command: WorkerCommand) -> Data {
        var prefix = BusProtocol.workerTag
        prefix.append(command.rawValue)
        return prefix
    }

    /// READY from a service instance (DEALER: no routing id).
    public static func workerReady(_ info: Rampart_Bus_V1_WorkerInfo) -> [Data] {
        [head(workerPrefix(.ready), info)]
    }

    /// REPLY from a service instance: `header.route` must be the request's.
    public static func workerReply(_ header: Rampart_Bus_V1_ReplyHeader, payload: Data) -> [Data] {
        [head(workerPrefix(.reply), header), payload]
    }

    /// HEARTBEAT or DISCONNECT from a service instance.
    public static func workerSignal(_ command: WorkerCommand) -> [Data] {
        [workerPrefix(command)]
    }

    /// REQUEST from the broker to a service instance (routing id first); `header.route` is set to `client`.
    public static func requestToWorker(
        _ worker: Data, client: Data, header: Rampart_Bus_V1_RequestHeader, payload: Data
    ) -> [Data] {
        var header = header
        header.route = client
        return [worker, head(workerPrefix(.request), header), payload]
    }

    /// HEARTBEAT or DISCONNECT from the broker to a service instance (routing id first).
    public static func signalToWorker(_ worker: Data, _ command: WorkerCommand) -> [Data] {
        [worker, workerPrefix(command)]
    }

    /// What a service instance received from the broker.
    public enum WorkerInbound: Sendable, Equatable {
        case request(client: Data, header: Rampart_Bus_V1_RequestHeader, payload: Data)
        case heartbeat
        case disconnect
    }

    /// Decodes what a service instance received, or nil when it is not understood (a REQUEST whose
    /// header cannot be read carries no route to answer on, so it is dropped like any garbage).
    public static func decodeAtWorker(_ frames: [Data]) -> WorkerInbound? {
        guard let head = frames.first, head.count >= 5, hasPrefix(head, BusProtocol.workerTag),
            let command = WorkerCommand(rawValue: head[head.startIndex + 4])
        else { return nil }
        switch command {
        case .request:
            guard frames.count == 2, let header = try? Rampart_Bus_V1_RequestHeader(serializedBytes: head.dropFirst(5)),
                !header.route.isEmpty
            else { return nil }
            return .request(client: header.route, header: header, payload: frames[1])
        case .heartbeat: return frames.count == 1 && head.count == 5 ? .heartbeat : nil
        case .disconnect: return frames.count == 1 && head.count == 5 ? .disconnect : nil
        case .ready, .reply: return nil
        }
    }

    /// Serializes a protobuf message; our own messages always serialize.
    public static func serialize(_ message: some SwiftProtobuf.Message) -> Data {
        // Serializing a fully initialized proto3 message cannot fail.
        (try? message.serializedBytes()) ?? Data()
    }

    /// A reply header with `status` and `message`.
    public static func replyHeader(
        requestId: UInt64, status: Rampart_Bus_V1_StatusCode, message: String, answeredBy: String
    ) -> Rampart_Bus_V1_ReplyHeader {
        var header = Rampart_Bus_V1_ReplyHeader()
        header.requestID = requestId
        header.status = status
        header.message = message
        header.answeredBy = answeredBy
        return header
    }
}
