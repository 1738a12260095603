import Foundation
import RampartProto
import SwiftProtobuf

/// The bus wire protocol (docs/protocol.md): plain routing frames around protobuf messages.
///
/// Client (DEALER) <-> broker (ROUTER):
///   request  ["", "RB1C", service, RequestHeader, payload]
///   reply    ["", "RB1C", service, ReplyHeader, payload]
/// Service instance (DEALER) <-> broker:
///   READY      ["", "RB1W", 0x01, service, WorkerInfo]        instance -> broker
///   REQUEST    ["", "RB1W", 0x02, client, RequestHeader, payload] broker -> instance
///   REPLY      ["", "RB1W", 0x03, client, ReplyHeader, payload]   instance -> broker
///   HEARTBEAT  ["", "RB1W", 0x04]                              both ways
///   DISCONNECT ["", "RB1W", 0x05]                              both ways
/// The ROUTER sees one more frame in front: the peer's routing id.
public enum BusProtocol {
    /// Tag of client messages.
    public static let clientTag = Data("RB1C".utf8)
    /// Tag of service-instance messages.
    public static let workerTag = Data("RB1W".utf8)
    /// The largest single frame the broker and instances accept (bytes; libzmq's ZMQ_MAXMSGSIZE is per
    /// frame); a larger frame drops the sender's connection without a reply.
    public static let maxMessageSize: Int64 = 16 << 20
    /// The service name the broker answers itself (`Broker/Status`).
    public static let brokerService = "bus.broker"
    /// The service name of the event journal (`Journal/Replay`, `Journal/Info`).
    public static let journalService = "bus.journal"
}

/// Commands of the service-instance side of the protocol.
public enum WorkerCommand: UInt8, Sendable {
    case ready = 1
    case request = 2
    case reply = 3
    case heartbeat = 4
    case disconnect = 5

    var frame: Data { Data([rawValue]) }
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
        guard frames.count >= 3, let peer = frames.first, !peer.isEmpty else {
            return .failure(MalformedMessage(reason: "fewer than 3 frames"))
        }
        guard frames[1].isEmpty else { return .failure(MalformedMessage(reason: "missing empty delimiter frame")) }
        let tag = frames[2]
        if tag == BusProtocol.clientTag {
            guard frames.count >= 4, let service = serviceName(frames[3]) else {
                return .failure(MalformedMessage(reason: "client request without a valid service name"))
            }
            var replyTo = MalformedMessage.ReplyTo(client: peer, service: service)
            guard frames.count == 6 else {
                return .failure(
                    MalformedMessage(reason: "client request has \(frames.count - 1) frames, expected 5", replyTo: replyTo))
            }
            guard let header = try? Rampart_Bus_V1_RequestHeader(serializedBytes: frames[4]) else {
                return .failure(MalformedMessage(reason: "request header is not a valid RequestHeader", replyTo: replyTo))
            }
            replyTo.requestId = header.requestID
            guard !header.method.isEmpty else {
                return .failure(MalformedMessage(reason: "request header names no method", replyTo: replyTo))
            }
            return .success(.clientRequest(client: peer, service: service, header: header, payload: frames[5]))
        }
        guard tag == BusProtocol.workerTag else {
            return .failure(MalformedMessage(reason: "unknown protocol tag"))
        }
        guard frames.count >= 4, frames[3].count == 1, let command = WorkerCommand(rawValue: frames[3][frames[3].startIndex])
        else {
            return .failure(MalformedMessage(reason: "unknown worker command"))
        }
        switch command {
        case .ready:
            guard frames.count == 6, let service = serviceName(frames[4]),
                let info = try? Rampart_Bus_V1_WorkerInfo(serializedBytes: frames[5])
            else { return .failure(MalformedMessage(reason: "malformed READY")) }
            return .success(.workerReady(worker: peer, service: service, info: info))
        case .reply:
            guard frames.count == 7, !frames[4].isEmpty,
                let header = try? Rampart_Bus_V1_ReplyHeader(serializedBytes: frames[5])
            else { return .failure(MalformedMessage(reason: "malformed REPLY")) }
            return .success(.workerReply(worker: peer, client: frames[4], header: header, payload: frames[6]))
        case .heartbeat:
            return frames.count == 4
                ? .success(.workerHeartbeat(worker: peer)) : .failure(MalformedMessage(reason: "malformed HEARTBEAT"))
        case .disconnect:
            return frames.count == 4
                ? .success(.workerDisconnect(worker: peer)) : .failure(MalformedMessage(reason: "malformed DISCONNECT"))
        case .request:
            return .failure(MalformedMessage(reason: "REQUEST is sent by the broker, not to it"))
        }
    }

    private static func serviceName(_ frame: Data) -> String? {
        guard !frame.isEmpty, frame.count <= maxServiceName, let name = String(data: frame, encoding: .utf8) else {
            return nil
        }
        return name
    }

    // MARK: client side

    /// The frames a client sends (DEALER: no routing id).
    public static func clientRequest(service: String, header: Rampart_Bus_V1_RequestHeader, payload: Data) -> [Data] {
        [Data(), BusProtocol.clientTag, Data(service.utf8), serialize(header), payload]
    }

    /// Decodes a reply a client received: (service, header, payload).
    public static func decodeClientReply(_ frames: [Data]) -> (String, Rampart_Bus_V1_ReplyHeader, Data)? {
        guard frames.count == 5, frames[0].isEmpty, frames[1] == BusProtocol.clientTag,
            let service = String(data: frames[2], encoding: .utf8),
            let header = try? Rampart_Bus_V1_ReplyHeader(serializedBytes: frames[3])
        else { return nil }
        return (service, header, frames[4])
    }

    /// The frames the broker sends a client (routing id first).
    public static func replyToClient(client: Data, service: String, header: Data, payload: Data) -> [Data] {
        [client, Data(), BusProtocol.clientTag, Data(service.utf8), header, payload]
    }

    // MARK: worker side

    /// A command from a service instance (DEALER: no routing id).
    public static func workerCommand(_ command: WorkerCommand, _ rest: [Data] = []) -> [Data] {
        [Data(), BusProtocol.workerTag, command.frame] + rest
    }

    /// The frames the broker sends a service instance (routing id first).
    public static func toWorker(_ worker: Data, _ command: WorkerCommand, _ rest: [Data] = []) -> [Data] {
        [worker, Data(), BusProtocol.workerTag, command.frame] + rest
    }

    /// What a service instance received from the broker.
    public enum WorkerInbound: Sendable, Equatable {
        case request(client: Data, header: Rampart_Bus_V1_RequestHeader, payload: Data)
        case malformedRequest(client: Data, reason: String)
        case heartbeat
        case disconnect
    }

    /// Decodes what a service instance received, or nil when it is not understood.
    public static func decodeAtWorker(_ frames: [Data]) -> WorkerInbound? {
        guard frames.count >= 3, frames[0].isEmpty, frames[1] == BusProtocol.workerTag, frames[2].count == 1,
            let command = WorkerCommand(rawValue: frames[2][frames[2].startIndex])
        else { return nil }
        switch command {
        case .request:
            guard frames.count == 6, !frames[3].isEmpty else { return nil }
            guard let header = try? Rampart_Bus_V1_RequestHeader(serializedBytes: frames[4]) else {
                return .malformedRequest(client: frames[3], reason: "request header is not a valid RequestHeader")
            }
            return .request(client: frames[3], header: header, payload: frames[5])
        case .heartbeat: return .heartbeat
        case .disconnect: return .disconnect
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
