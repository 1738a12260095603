import Foundation

/// All link-signing keys: exactly one active key signs; retired keys only verify, and only until
/// the last link they could have signed has expired (`retiredAt + maxValidity`).
public struct KeyRing: Sendable {
    /// A key and when it was retired (nil for the active key).
    public struct Entry: Sendable {
        /// The key.
        public let key: SigningKey
        /// When it stopped signing; nil while it is the active key.
        public let retiredAt: Date?

        /// Makes an entry.
        public init(key: SigningKey, retiredAt: Date?) {
            self.key = key
            self.retiredAt = retiredAt
        }
    }

    /// The keys, active and retired.
    public let entries: [Entry]

    /// A ring holding `entries`; throws unless exactly one key is active and ids are unique.
    public init(entries: [Entry]) throws(SigningKeyError) {
        guard entries.filter({ $0.retiredAt == nil }).count == 1 else {
            throw SigningKeyError("a key ring needs exactly one active key")
        }
        guard Set(entries.map(\.key.id)).count == entries.count else {
            throw SigningKeyError("two signing keys share an id")
        }
        self.entries = entries
    }

    /// A ring with one active key.
    public init(active: SigningKey) {
        self.entries = [Entry(key: active, retiredAt: nil)]
    }

    /// The key that signs new links.
    public var active: SigningKey { entries.first { $0.retiredAt == nil }!.key }

    /// The keys that may verify a link at `now`: the active key, and each retired key while
    /// `now <= retiredAt + maxValidity`.
    public func usable(at now: Date, maxValidity: Duration = LinkValidity.maximum) -> [SigningKey] {
        let window = TimeInterval(maxValidity.components.seconds)
        return entries.filter { entry in
            guard let retiredAt = entry.retiredAt else { return true }
            return now <= retiredAt.addingTimeInterval(window)
        }.map(\.key)
    }

    /// This ring with a new random active key; the old active key is retired at `now`.
    public func rotated(now: Date) -> KeyRing {
        var key = SigningKey.generate()
        while entries.contains(where: { $0.key.id == key.id }) { key = SigningKey.generate() }
        return rotated(now: now, to: key)
    }

    /// This ring with `key` as the active key; the old active key is retired at `now`.
    /// `key`'s id must not already be in the ring.
    public func rotated(now: Date, to key: SigningKey) -> KeyRing {
        precondition(!entries.contains { $0.key.id == key.id }, "a new key needs a new id")
        let retired = entries.map { $0.retiredAt == nil ? Entry(key: $0.key, retiredAt: now) : $0 }
        return KeyRing(unchecked: retired + [Entry(key: key, retiredAt: nil)])
    }

    /// This ring without the retired keys that can no longer verify anything at `now`.
    public func pruned(at now: Date, maxValidity: Duration = LinkValidity.maximum) -> KeyRing {
        let keep = Set(usable(at: now, maxValidity: maxValidity).map(\.id))
        return KeyRing(unchecked: entries.filter { keep.contains($0.key.id) })
    }

    /// A signer that signs with the active key and verifies with the keys usable at `now`.
    public func signer(at now: Date, baseURL: String, maxValidity: Duration = LinkValidity.maximum) -> LinkSigner {
        // Ids are unique and the active key is usable, so this cannot throw.
        try! LinkSigner(
            keys: usable(at: now, maxValidity: maxValidity), activeKeyId: active.id, baseURL: baseURL,
            maxValidity: maxValidity)
    }

    private init(unchecked entries: [Entry]) { self.entries = entries }
}
