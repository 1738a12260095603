import Crypto
import Foundation
import RampartBasics

/// Which events a hook is told of (P15): each of its topics is an exact topic
/// (`backup.job.failed`) or a prefix, written with a trailing `.` or `*` (`backup.`, `backup.*`).
public enum TopicFilter {
    /// Whether `topic` is one of `filters`.
    public static func matches(_ topic: String, _ filters: [String]) -> Bool {
        filters.contains { filter in
            if filter.hasSuffix("*") { return topic.hasPrefix(String(filter.dropLast())) }
            if filter.hasSuffix(".") { return topic.hasPrefix(filter) }
            return topic == filter
        }
    }

    /// Why `filter` is not a topic a hook can choose, or nil when it is: dotted words of letters,
    /// digits, `_` and `-`, optionally ending in `.` or `*`; `*` alone means every topic.
    public static func problem(_ filter: String) -> String? {
        guard !filter.isEmpty else { return "a topic may not be empty" }
        guard filter.count <= 200 else { return "a topic is at most 200 characters" }
        var body = Substring(filter)
        if body.hasSuffix("*") { body = body.dropLast() }
        if body.isEmpty { return nil }
        if body.hasSuffix(".") { body = body.dropLast() }
        let allowed = CharacterSet.lowercaseLetters.union(.decimalDigits).union(CharacterSet(charactersIn: "_-"))
        for word in body.split(separator: ".", omittingEmptySubsequences: false) {
            guard !word.isEmpty, word.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) }) else {
                return "'\(filter)' is not a topic: dotted lower-case words, optionally ending in '.' or '*' (backup.job.failed, backup.*)"
            }
        }
        return nil
    }

    /// The longest prefix every event a hook chose starts with: what the journal is asked to replay for it.
    public static func commonPrefix(_ filters: [String]) -> String {
        let stems = filters.map { $0.hasSuffix("*") ? String($0.dropLast()) : $0 }
        guard var prefix = stems.first else { return "" }
        for stem in stems.dropFirst() {
            while !stem.hasPrefix(prefix) { prefix.removeLast() }
        }
        return prefix
    }
}

/// When a hook that failed is tried again: `base` after the first failure, doubling after each
/// further one, never more than `maximum` (P15). No jitter: each hook retries on its own schedule
/// and one notifier sends to a hook one event at a time.
public struct Backoff: Sendable, Equatable {
    public var base: Duration
    public var maximum: Duration

    public init(base: Duration = .seconds(1), maximum: Duration = .seconds(60)) {
        self.base = base
        self.maximum = maximum
    }

    /// The wait before the next attempt after `failures` failed attempts in a row (1: the first).
    public func delay(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        var delay = base
        for _ in 1..<min(failures, 63) {
            delay *= 2
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }
}

/// Hook URLs as they may be shown or logged: a user, password or query value is a credential often
/// enough (`https://user:token@host/…`, `…?token=…`) that none is ever printed (P15). So is a token in
/// the path, as chat services put it (`/services/T0123/B0456/<24 characters>`, `/api/webhooks/<id>/<token>`,
/// a UUID): a path segment of 16 characters or more with a digit or a capital letter in it is masked too,
/// while words (`/hooks/backup-events`) stay readable.
public enum URLMasking {
    public static let mask = "***"

    /// `url` with its user info, every query value and every token-like path segment replaced by `***`;
    /// the scheme, host, port, other path segments and query names stay. Text that is no URL is masked
    /// whole after its scheme.
    public static func masked(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.host != nil else {
            if let range = url.range(of: "://") { return String(url[..<range.upperBound]) + mask }
            return mask
        }
        let hadUserInfo = components.user != nil || components.password != nil
        components.user = nil
        components.password = nil
        components.fragment = nil
        if let items = components.queryItems {
            components.queryItems = items.map { URLQueryItem(name: $0.name, value: $0.value == nil ? nil : mask) }
        }
        components.percentEncodedPath = components.percentEncodedPath.split(separator: "/", omittingEmptySubsequences: false)
            .map { isTokenLike($0) ? mask : String($0) }.joined(separator: "/")
        guard let text = components.string else { return mask }
        guard hadUserInfo, let schemeEnd = text.range(of: "://") else { return text }
        return String(text[..<schemeEnd.upperBound]) + mask + "@" + String(text[schemeEnd.upperBound...])
    }

    /// Whether a path segment looks like a credential rather than a name: 16 characters or more, with a
    /// digit or a capital letter (or a percent-encoded byte) among them.
    static func isTokenLike(_ segment: Substring) -> Bool {
        segment.utf8.count >= 16 && segment.utf8.contains { (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || $0 == 0x25 }
    }

    /// Why `url` cannot be a hook's, or nil: http or https, a host, no fragment, at most 2048 characters.
    public static func problem(_ url: String) -> String? {
        guard url.count <= 2048 else { return "a hook URL is at most 2048 characters" }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            ["http", "https"].contains(scheme), let host = components.host, !host.isEmpty
        else { return "a hook URL must be http:// or https:// with a host, not '\(masked(url))'" }
        guard components.fragment == nil else { return "a hook URL has no #fragment" }
        return nil
    }
}

/// The `X-Rampart-Signature` header (P15): HMAC-SHA256 of the exact body bytes under the hook's
/// secret, `sha256=` and lower-case hex, as GitHub's and Stripe's receivers check theirs.
public enum WebhookSignature {
    public static let header = "X-Rampart-Signature"

    /// The header's value for `body` signed with `secret`.
    public static func value(body: some DataProtocol, secret: String) -> String {
        let key = SymmetricKey(data: Data(secret.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: key)
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `header` is the signature of `body` under `secret` (compared in constant time).
    public static func verify(header: String, body: some DataProtocol, secret: String) -> Bool {
        guard header.hasPrefix("sha256="), let mac = hexBytes(header.dropFirst("sha256=".count)) else { return false }
        let key = SymmetricKey(data: Data(secret.utf8))
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key)
    }

    private static func hexBytes(_ text: Substring) -> [UInt8]? {
        guard text.count == 64 else { return nil }
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}
