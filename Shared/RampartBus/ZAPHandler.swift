import Dispatch
import Foundation
import Logging
import Synchronization
import ZeroMQ

/// A ZAP handler (RFC 27) for this process's ZeroMQ context: libzmq asks it, at every CURVE handshake
/// on a socket with a ZAP domain, whether to admit the peer's public key. A refused peer's connection
/// is closed before any message is exchanged ("an unknown key gets no data at all").
///
/// Start it before binding any CURVE server socket: libzmq admits everyone when no handler is bound.
public final class ZAPHandler: Sendable {
    /// What libzmq asks.
    public struct Request: Sendable, Equatable {
        public var domain: String
        /// The peer's IP address.
        public var address: String
        /// "CURVE", "NULL" or "PLAIN".
        public var mechanism: String
        /// The peer's public key (Z85), for CURVE.
        public var publicKey: String?

        public init(domain: String, address: String, mechanism: String, publicKey: String?) {
            self.domain = domain
            self.address = address
            self.mechanism = mechanism
            self.publicKey = publicKey
        }
    }

    /// The answer: admit with a user id (readable on every message as `User-Id`), or refuse.
    public enum Decision: Sendable, Equatable {
        case admit(userId: String)
        case refuse(reason: String)
    }

    /// The well-known endpoint libzmq sends ZAP requests to.
    public static let endpoint = "inproc://zeromq.zap.01"

    private let decide: @Sendable (Request) -> Decision
    private let logger: Logger
    private let control = LoopControl()
    private let counts = Mutex<(admitted: UInt64, refused: UInt64)>((0, 0))

    /// A handler answering with `decide`.
    public init(logger: Logger, decide: @escaping @Sendable (Request) -> Decision) {
        self.decide = decide
        self.logger = logger
    }

    /// Handshakes admitted and refused so far.
    public var statistics: (admitted: UInt64, refused: UInt64) { counts.withLock { $0 } }

    /// Binds the handler's socket (returning once bound, or throwing when it cannot be) and answers on
    /// a thread of its own until `stop()`.
    public func start() throws {
        let bound = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
        Thread.start(named: "bus-zap") { [self] in
            let socket: ZMQSocket
            do {
                try control.wakeup.ensureUsable()
                socket = try ZMQSocket(.rep)
                try socket.bind(Self.endpoint)
            } catch {
                failure.withLock { $0 = error }
                bound.signal()
                return
            }
            bound.signal()
            loop(socket)
        }
        bound.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Stops answering (handshakes after this fail).
    public func stop() { control.stop() }

    private func loop(_ socket: ZMQSocket) {
        defer { socket.close() }
        var poller = ZMQPoller()
        let index = poller.add(socket)
        poller.add(fileDescriptor: control.wakeup.readDescriptor)
        while !control.isStopRequested {
            do {
                try poller.poll(timeoutMilliseconds: 1000)
                control.wakeup.drain()
                guard poller.isReadable(index) else { continue }
                while let frames = try socket.receive(dontWait: true) {
                    try socket.send(answer(frames))
                }
            } catch {
                logger.error("ZAP handler error", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The reply frames for one request (RFC 27: version, request id, status code, status text,
    /// user id, metadata).
    public func answer(_ frames: [Data]) -> [Data] {
        func reply(_ requestId: Data, _ code: String, _ text: String, _ userId: String = "") -> [Data] {
            [Data("1.0".utf8), requestId, Data(code.utf8), Data(text.utf8), Data(userId.utf8), Data()]
        }
        guard frames.count >= 6, frames[0] == Data("1.0".utf8) else {
            counts.withLock { $0.refused += 1 }
            return reply(frames.count > 1 ? frames[1] : Data(), "500", "malformed ZAP request")
        }
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        var request = Request(
            domain: String(decoding: frames[2], as: UTF8.self), address: String(decoding: frames[3], as: UTF8.self),
            mechanism: mechanism, publicKey: nil)
        if mechanism == "CURVE" {
            guard frames.count >= 7, frames[6].count == 32 else {
                counts.withLock { $0.refused += 1 }
                return reply(frames[1], "400", "CURVE request without a 32-byte key")
            }
            request.publicKey = Curve.encode(Array(frames[6]))
        }
        switch decide(request) {
        case .admit(let userId):
            counts.withLock { $0.admitted += 1 }
            return reply(frames[1], "200", "OK", userId)
        case .refuse(let reason):
            let refused = counts.withLock { counts -> UInt64 in
                counts.refused += 1
                return counts.refused
            }
            if refused <= 20 || refused % 1000 == 0 {
                logger.warning(
                    "bus connection refused",
                    metadata: [
                        "reason": "\(reason)", "address": "\(request.address)", "domain": "\(request.domain)",
                        "key": "\(request.publicKey?.prefix(8) ?? "-")", "refused": "\(refused)",
                    ])
            }
            return reply(frames[1], "400", reason)
        }
    }
}

/// Who the bus admits (the broker's and the event publisher's ZAP decisions): CURVE only, keys in the
/// authorized list only; devices may not subscribe to the event stream. Pure, for testing.
public enum BusAdmission {
    public static func decide(_ request: ZAPHandler.Request, keys: AuthorizedKeys) -> ZAPHandler.Decision {
        guard request.mechanism == "CURVE", let key = request.publicKey else {
            return .refuse(reason: "this bus requires CURVE")
        }
        guard let identity = keys.identity(forKey: key) else { return .refuse(reason: "unknown key") }
        switch request.domain {
        case BrokerSecurity.busDomain:
            return .admit(userId: key)
        case BrokerSecurity.eventsDomain:
            return identity.role == .device
                ? .refuse(reason: "device keys may not subscribe to events") : .admit(userId: key)
        default:
            return .refuse(reason: "unknown ZAP domain '\(request.domain)'")
        }
    }
}
