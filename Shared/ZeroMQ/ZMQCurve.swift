import CZeroMQ

/// A CURVE key pair (RFC 26), both keys Z85-encoded: 40 printable characters for 32 bytes.
public struct CurveKeyPair: Sendable, Hashable {
    /// The public key, shared with peers.
    public var publicKey: String
    /// The secret key; never leaves its owner.
    public var secretKey: String

    /// A key pair from given Z85 keys; throws when they are not keys or do not belong together.
    public init(publicKey: String, secretKey: String) throws {
        guard Curve.isKey(publicKey), Curve.isKey(secretKey) else { throw CurveError("not a Z85-encoded 32-byte key") }
        guard try Curve.publicKey(forSecret: secretKey) == publicKey else {
            throw CurveError("the public key does not belong to the secret key")
        }
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A fresh random key pair (libzmq's `zmq_curve_keypair`, libsodium underneath).
    public static func generate() throws -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw CurveError("zmq_curve_keypair failed: libzmq has no CURVE") }
        return try CurveKeyPair(publicKey: Curve.text(publicKey), secretKey: Curve.text(secretKey))
    }
}

/// A CURVE key that is not one.
public struct CurveError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Z85 and CURVE helpers.
public enum Curve {
    /// Whether `key` is a Z85-encoded 32-byte key (40 characters of the Z85 alphabet).
    public static func isKey(_ key: String) -> Bool {
        decode(key) != nil
    }

    /// The 32 bytes of a Z85-encoded key, or nil.
    public static func decode(_ key: String) -> [UInt8]? {
        let utf8 = Array(key.utf8)
        guard utf8.count == 40, utf8.allSatisfy({ z85Alphabet.contains($0) }) else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        let ok = key.withCString { zmq_z85_decode(&bytes, $0) != nil }
        return ok ? bytes : nil
    }

    /// The Z85 text of 32 bytes.
    public static func encode(_ bytes: [UInt8]) -> String {
        precondition(bytes.count == 32, "a CURVE key is 32 bytes")
        var text = [CChar](repeating: 0, count: 41)
        _ = zmq_z85_encode(&text, bytes, 32)
        return Curve.text(text)
    }

    /// The public key that belongs to `secret`.
    public static func publicKey(forSecret secret: String) throws -> String {
        guard isKey(secret) else { throw CurveError("not a Z85-encoded 32-byte key") }
        var publicKey = [CChar](repeating: 0, count: 41)
        let result = secret.withCString { zmq_curve_public(&publicKey, $0) }
        guard result == 0 else { throw CurveError("zmq_curve_public failed: libzmq has no CURVE") }
        return text(publicKey)
    }

    /// The text of a NUL-terminated C buffer (a Z85 key libzmq wrote).
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static let z85Alphabet = Set(
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
}

extension ZMQSocket {
    /// Makes this socket a CURVE server (set before `bind`): peers must complete a CURVE handshake and
    /// are then judged by the ZAP handler of this context (`ZAPHandler`) under `domain`.
    public func makeCurveServer(secretKey: String, domain: String) throws {
        guard let secret = Curve.decode(secretKey) else { throw CurveError("the server's secret key is not a key") }
        try setOption(ZMQ_CURVE_SERVER, 1)
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: secret)
        try setOption(ZMQ_ZAP_DOMAIN, bytes: Array(domain.utf8))
    }

    /// Makes this socket a CURVE client (set before `connect`) that talks only to the server whose
    /// public key is `serverKey`.
    public func makeCurveClient(_ keys: CurveKeyPair, serverKey: String) throws {
        guard let server = Curve.decode(serverKey) else { throw CurveError("the server's public key is not a key") }
        try setOption(ZMQ_CURVE_SERVERKEY, bytes: server)
        try setOption(ZMQ_CURVE_PUBLICKEY, bytes: Curve.decode(keys.publicKey)!)
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: Curve.decode(keys.secretKey)!)
    }

    /// Sets the ZAP domain of a socket that does not use CURVE, so that its peers are still judged
    /// by the ZAP handler (NULL mechanism; used for the plain loopback mode's logging only).
    public func setZAPDomain(_ domain: String) throws {
        try setOption(ZMQ_ZAP_DOMAIN, bytes: Array(domain.utf8))
    }
}
