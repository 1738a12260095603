import Crypto
import Foundation

/// A signed download URL and what it was signed with (L2).
public struct SignedLink: Sendable, Hashable {
    /// The full URL: `<base><percent-encoded path>?expires=…&kid=…&nonce=…&sig=…`.
    public let url: String
    /// When the link stops working (whole seconds; the link is still valid at this instant).
    public let expires: Date
    /// The id of the key that signed it.
    public let keyId: String
    /// The random nonce that makes every export's URL different.
    public let nonce: String
}

/// Makes signed download URLs with the active key, and checks them against all its keys.
///
/// The signature is HMAC-SHA-256 over `"GET\n<encoded path>\n<expires>\n<kid>\n<nonce>"`,
/// sent as unpadded base64url in `sig`.
public struct LinkSigner: Sendable {
    /// The keys this signer knows, by id; only the active one signs.
    public let keys: [String: SigningKey]
    /// The id of the key new links are signed with.
    public let activeKeyId: String
    /// Scheme, host and port URLs start with, without a trailing slash (e.g. `http://127.0.0.1:7480`).
    public let baseURL: String
    /// The longest validity a link may claim when checked.
    public let maxValidity: Duration

    /// Builds a signer; throws when key ids repeat or `activeKeyId` is not among `keys`.
    public init(
        keys: [SigningKey], activeKeyId: String, baseURL: String, maxValidity: Duration = LinkValidity.maximum
    ) throws(SigningKeyError) {
        var byId: [String: SigningKey] = [:]
        for key in keys {
            guard byId.updateValue(key, forKey: key.id) == nil else {
                throw SigningKeyError("two signing keys share the id \(key.id)")
            }
        }
        guard byId[activeKeyId] != nil else { throw SigningKeyError("the active key \(activeKeyId) is not known") }
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.keys = byId
        self.activeKeyId = activeKeyId
        self.baseURL = base
        self.maxValidity = maxValidity
    }

    /// Signs `path` (decoded, starting with "/", e.g. `/backups/<uuid>/<file name>`) until `expires`
    /// (rounded down to a whole second). `nonce` is for tests only; by default 16 random bytes
    /// as 22 base64url characters, so signing the same path twice gives different URLs.
    public func sign(path: String, expires: Date, nonce: String? = nil) -> SignedLink {
        precondition(path.hasPrefix("/"), "a link path starts with /")
        let key = keys[activeKeyId]!
        let nonce = nonce ?? LinkSigner.randomNonce()
        precondition(Base64URL.decode(nonce) != nil, "a nonce is canonical base64url")
        let seconds = Int64(expires.timeIntervalSince1970.rounded(.down))
        let encodedPath = PathEncoding.encode(path)
        let mac = HMAC<SHA256>.authenticationCode(
            for: LinkCheck.signedText(path: encodedPath, expires: seconds, keyId: key.id, nonce: nonce),
            using: key.secret)
        let sig = Base64URL.encode(mac)
        return SignedLink(
            url: "\(baseURL)\(encodedPath)?expires=\(seconds)&kid=\(key.id)&nonce=\(nonce)&sig=\(sig)",
            expires: Date(timeIntervalSince1970: TimeInterval(seconds)), keyId: key.id, nonce: nonce)
    }

    /// Signs `path` for `validity` from `now` (default six hours, clamped to `maxValidity`).
    public func sign(path: String, now: Date, validity: Duration = LinkValidity.default) -> SignedLink {
        let seconds = min(validity, maxValidity).components.seconds
        return sign(path: path, expires: now.addingTimeInterval(TimeInterval(seconds)))
    }

    /// Checks a request against this signer's keys; see ``LinkCheck/verify(method:path:query:now:keys:maxValidity:)``.
    public func verify(method: String, path: String, query: String, now: Date) -> Result<VerifiedLink, LinkRefusal> {
        LinkCheck.verify(method: method, path: path, query: query, now: now, keys: keys, maxValidity: maxValidity)
    }

    static func randomNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }
}

/// A link that passed every check: what the download may serve.
public struct VerifiedLink: Sendable, Hashable {
    /// The decoded path, e.g. `/backups/<uuid>/<file name>`.
    public let path: String
    /// The id of the key that signed it.
    public let keyId: String
    /// When it expires.
    public let expires: Date
    /// Its nonce (for logs and download events).
    public let nonce: String
}

/// Why a link was refused; `reason` is a short text for the 403 body that echoes nothing from the request.
public enum LinkRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// The method is neither GET nor HEAD.
    case methodNotAllowed
    /// The path is not a canonically percent-encoded UTF-8 path.
    case malformedPath
    /// A parameter is missing, repeated, unknown, empty or badly encoded; the text names which.
    case malformedQuery(String)
    /// No usable key has this id.
    case unknownKey
    /// The signature does not match.
    case badSignature
    /// The link's expiry has passed.
    case expired
    /// The link claims a longer validity than allowed.
    case validityTooLong

    /// A short reason for the 403 body.
    public var reason: String {
        switch self {
        case .methodNotAllowed: "method not allowed"
        case .malformedPath: "malformed link: path"
        case .malformedQuery(let what): "malformed link: \(what)"
        case .unknownKey: "unknown key"
        case .badSignature: "bad signature"
        case .expired: "link expired"
        case .validityTooLong: "link validity too long"
        }
    }

    /// Same as `reason`.
    public var description: String { reason }
}

/// Checking signed links: the side the download server uses. Pure: time and keys are passed in.
public enum LinkCheck {
    /// The four query parameters of a signed link, in the order they are written.
    public static let parameterNames = ["expires", "kid", "nonce", "sig"]

    /// Checks `method`, the raw (percent-encoded) request `path` and the raw `query` (without "?")
    /// at `now` against `keys`. HEAD verifies like GET. Refuses malformed links, unknown keys,
    /// wrong signatures (compared in constant time), expired links (`now > expires`) and links
    /// whose expiry lies more than `maxValidity` after `now`.
    public static func verify(
        method: String, path: String, query: String, now: Date, keys: [String: SigningKey],
        maxValidity: Duration = LinkValidity.maximum
    ) -> Result<VerifiedLink, LinkRefusal> {
        guard method == "GET" || method == "HEAD" else { return .failure(.methodNotAllowed) }
        guard path.hasPrefix("/"), let decodedPath = PathEncoding.decodeCanonical(path),
            !decodedPath.utf8.contains(0),
            !decodedPath.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." || $0 == "." })
        else { return .failure(.malformedPath) }

        var values: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: false) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parameterNames.contains(String(parts[0])) else {
                return .failure(.malformedQuery("unknown parameter"))
            }
            guard !parts[1].isEmpty else { return .failure(.malformedQuery("empty \(parts[0])")) }
            guard values.updateValue(String(parts[1]), forKey: String(parts[0])) == nil else {
                return .failure(.malformedQuery("repeated \(parts[0])"))
            }
        }
        for name in parameterNames where values[name] == nil {
            return .failure(.malformedQuery("missing \(name)"))
        }
        let expiresText = values["expires"]!, keyId = values["kid"]!, nonce = values["nonce"]!
        guard expiresText.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let expires = Int64(expiresText),
            String(expires) == expiresText
        else { return .failure(.malformedQuery("expires")) }
        guard SigningKey.isValidId(keyId) else { return .failure(.malformedQuery("kid")) }
        guard Base64URL.decode(nonce) != nil else { return .failure(.malformedQuery("nonce")) }
        guard let sig = Base64URL.decode(values["sig"]!), sig.count == SHA256.byteCount else {
            return .failure(.malformedQuery("sig"))
        }
        guard let key = keys[keyId] else { return .failure(.unknownKey) }

        let text = signedText(path: path, expires: expires, keyId: keyId, nonce: nonce)
        guard HMAC<SHA256>.isValidAuthenticationCode(sig, authenticating: text, using: key.secret) else {
            return .failure(.badSignature)
        }
        let nowSeconds = now.timeIntervalSince1970
        guard nowSeconds <= TimeInterval(expires) else { return .failure(.expired) }
        guard TimeInterval(expires) - nowSeconds <= TimeInterval(maxValidity.components.seconds) else {
            return .failure(.validityTooLong)
        }
        return .success(
            VerifiedLink(
                path: decodedPath, keyId: keyId, expires: Date(timeIntervalSince1970: TimeInterval(expires)),
                nonce: nonce))
    }

    /// The exact bytes the MAC covers: `"GET\n<encoded path>\n<expires>\n<kid>\n<nonce>"`.
    static func signedText(path: String, expires: Int64, keyId: String, nonce: String) -> [UInt8] {
        Array("GET\n\(path)\n\(expires)\n\(keyId)\n\(nonce)".utf8)
    }
}
