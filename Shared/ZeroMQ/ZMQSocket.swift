import CZeroMQ
import Foundation

/// The ZeroMQ socket types Rampart uses.
public enum ZMQSocketType: Sendable {
    case router, dealer, pub, sub, xpub, pair, push, pull, req, rep

    var raw: Int32 {
        switch self {
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .xpub: ZMQ_XPUB
        case .pair: ZMQ_PAIR
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        }
    }
}

/// A ZeroMQ socket. Not thread-safe: create it on the thread that uses it and keep it there.
/// Sends and receives whole multipart messages as arrays of frames; errors are thrown as `ZMQError`.
public final class ZMQSocket {
    /// The raw libzmq handle, for polling.
    public let handle: UnsafeMutableRawPointer
    private var closed = false

    /// Opens a socket of `type` in `context`, with linger 0 so closing never blocks.
    public init(_ type: ZMQSocketType, context: ZMQContext = .shared) throws {
        guard let handle = zmq_socket(context.handle, type.raw) else { throw ZMQError.last("zmq_socket") }
        self.handle = handle
        try setOption(ZMQ_LINGER, 0)
    }

    deinit { close() }

    /// Closes the socket; further use is an error. Safe to call twice.
    public func close() {
        guard !closed else { return }
        closed = true
        zmq_close(handle)
    }

    /// Binds to `endpoint` ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:*", "inproc://x").
    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError.last("bind \(endpoint)") }
    }

    /// Connects to `endpoint`; libzmq reconnects by itself when the peer goes away.
    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError.last("connect \(endpoint)") }
    }

    /// Disconnects from `endpoint`.
    public func disconnect(_ endpoint: String) throws {
        guard zmq_disconnect(handle, endpoint) == 0 else { throw ZMQError.last("disconnect \(endpoint)") }
    }

    /// The endpoint last bound, with a wildcard port resolved ("tcp://127.0.0.1:41234").
    public var lastEndpoint: String {
        var buffer = [UInt8](repeating: 0, count: 512)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Sets an integer option (`ZMQ_SNDHWM`, `ZMQ_RCVTIMEO`, ...).
    public func setOption(_ option: Int32, _ value: Int32) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("setsockopt \(option)")
        }
    }

    /// Sets a 64-bit integer option (`ZMQ_MAXMSGSIZE`).
    public func setOption(_ option: Int32, int64 value: Int64) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last("setsockopt \(option)")
        }
    }

    /// Sets a binary option (`ZMQ_SUBSCRIBE`, `ZMQ_ROUTING_ID`, CURVE keys).
    public func setOption(_ option: Int32, bytes: [UInt8]) throws {
        let result = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard result == 0 else { throw ZMQError.last("setsockopt \(option)") }
    }

    /// Subscribes a SUB socket to topics starting with `prefix` ("" = everything).
    public func subscribe(_ prefix: String) throws {
        try setOption(ZMQ_SUBSCRIBE, bytes: Array(prefix.utf8))
    }

    /// How many messages may queue per peer before sends drop (ROUTER, PUB) or block (DEALER).
    public func setHighWaterMarks(send: Int32, receive: Int32) throws {
        try setOption(ZMQ_SNDHWM, send)
        try setOption(ZMQ_RCVHWM, receive)
    }

    /// Refuses (drops the connection of) peers that send a message larger than `bytes`.
    public func setMaxMessageSize(_ bytes: Int64) throws {
        try setOption(ZMQ_MAXMSGSIZE, int64: bytes)
    }

    /// Sends one multipart message. Returns false when `dontWait` is set and it would block.
    @discardableResult
    public func send(_ frames: [Data], dontWait: Bool = false) throws -> Bool {
        precondition(!frames.isEmpty, "a message has at least one frame")
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if index < frames.count - 1 { flags |= ZMQ_SNDMORE }
            while true {
                let result = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
                if result >= 0 { break }
                let error = ZMQError.last("send")
                if error.isInterrupted { continue }
                // Only the first frame can block: later frames of a started message are queued whole.
                if error.isWouldBlock && index == 0 { return false }
                throw error
            }
        }
        return true
    }

    /// Receives one whole multipart message, or nil when `dontWait` is set and nothing is there.
    public func receive(dontWait: Bool = false) throws -> [Data]? {
        try receive(dontWait: dontWait, userId: nil)
    }

    /// Receives one whole multipart message and the ZAP user id its sender was admitted with
    /// (`User-Id`; nil for a peer that never went through ZAP, e.g. inproc). A ROUTER's message must have
    /// at least one frame after the routing id for the user id to be known.
    public func receiveWithUserId(dontWait: Bool = false) throws -> (frames: [Data], userId: String?)? {
        var userId: String?
        guard let frames = try receive(dontWait: dontWait, userId: &userId) else { return nil }
        return (frames, userId)
    }

    private func receive(dontWait: Bool, userId: UnsafeMutablePointer<String?>?) throws -> [Data]? {
        var frames: [Data] = []
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { message.deallocate() }
        while true {
            zmq_msg_init(message)
            defer { zmq_msg_close(message) }
            let flags: Int32 = (dontWait && frames.isEmpty) ? ZMQ_DONTWAIT : 0
            let size = zmq_msg_recv(message, handle, flags)
            if size < 0 {
                let error = ZMQError.last("receive")
                if error.isInterrupted { continue }
                if error.isWouldBlock && frames.isEmpty { return nil }
                throw error
            }
            // The ROUTER's own routing-id frame carries no metadata: read it from a frame that came off the wire.
            if let userId, userId.pointee == nil, !frames.isEmpty, let property = zmq_msg_gets(message, "User-Id") {
                userId.pointee = String(cString: property)
            }
            if size == 0 {
                frames.append(Data())
            } else {
                frames.append(Data(bytes: zmq_msg_data(message), count: Int(size)))
            }
            if zmq_msg_more(message) == 0 { return frames }
        }
    }
}
