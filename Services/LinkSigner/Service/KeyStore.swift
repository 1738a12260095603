import Crypto
import Foundation
import Logging
import Postgres
import RampartBasics
import RampartBus
import RampartCrypto
import RampartDatabase
import RampartLinks
import RampartProto
import RampartRPC
import Synchronization

/// The link-signing keys in table `links.keys`, each sealed under the link-signer's master key
/// (never stored plain), and a short-lived in-memory copy of the ring.
///
/// Several link-signer instances may share the table: a rotation by one is seen by the others
/// within `cacheLifetime`, and at once when a link names a key they do not know yet.
final class KeyStore: Sendable {
    /// A key row, without its secret.
    struct Row: Sendable {
        var id: String
        var createdAt: Date
        var retiredAt: Date?
    }

    struct Loaded: Sendable {
        var ring: KeyRing
        var rows: [Row]
        var loadedAt: ContinuousClock.Instant
    }

    let masterKey: MasterKey
    let maxValidity: Duration
    let cacheLifetime: Duration
    private let cache = Mutex<Loaded?>(nil)

    init(masterKey: MasterKey, maxValidity: Duration = LinkValidity.maximum, cacheLifetime: Duration = .seconds(1)) {
        self.masterKey = masterKey
        self.maxValidity = maxValidity
        self.cacheLifetime = cacheLifetime
    }

    static func context(_ keyId: String) -> String { "link-signing-key:\(keyId)" }

    /// Makes the first key when the table has no active one (at start; safe with several instances).
    func ensureActiveKey(now: Date, on connection: PostgresConnection, logger: Logger) throws {
        try connection.transaction { connection in
            _ = try connection.execute("LOCK TABLE links.keys IN SHARE ROW EXCLUSIVE MODE")
            let active = try connection.query("SELECT id FROM links.keys WHERE retired_at IS NULL")
            guard active.first == nil else { return }
            let key = try insertNewKey(now: now, avoiding: [], on: connection)
            logger.notice("made the first link-signing key", metadata: ["key-id": "\(key.id)"])
        }
    }

    /// Every key, unsealed, read from the table now.
    func load(on connection: PostgresConnection) throws -> Loaded {
        let rows = try connection.query(
            "SELECT id, sealed, master_key_id, created_at, retired_at FROM links.keys ORDER BY created_at, id")
        var entries: [KeyRing.Entry] = []
        var infos: [Row] = []
        for row in rows {
            let id: String = try row.decode("id")
            let masterKeyId: String = try row.decode("master_key_id")
            guard masterKeyId == masterKey.id else {
                throw RPCError(
                    .failedPrecondition,
                    "signing key \(id) is sealed under master key \(masterKeyId), but this link-signer has \(masterKey.id): start every link-signer with the same --master-key")
            }
            let secret: [UInt8]
            do {
                secret = try masterKey.unseal(try row.decode("sealed", as: Data.self), context: Self.context(id))
            } catch {
                throw RPCError(.dataLoss, "signing key \(id) does not open under master key \(masterKey.id): it is damaged")
            }
            let key = try SigningKey(secret: SymmetricKey(data: secret), id: id)
            let retiredAt: Date? = try row.decodeIfPresent("retired_at")
            entries.append(KeyRing.Entry(key: key, retiredAt: retiredAt))
            infos.append(Row(id: id, createdAt: try row.decode("created_at"), retiredAt: retiredAt))
        }
        let ring: KeyRing
        do {
            ring = try KeyRing(entries: entries)
        } catch {
            throw RPCError(.failedPrecondition, "the link-signing keys are unusable: \(error.message)")
        }
        let loaded = Loaded(ring: ring, rows: infos, loadedAt: .now)
        cache.withLock { $0 = loaded }
        return loaded
    }

    /// The cached ring while it is younger than `cacheLifetime`, otherwise read anew.
    func current(pool: PostgresPool, forceReload: Bool = false) async throws -> Loaded {
        if !forceReload, let cached = cache.withLock({ $0 }), cached.loadedAt.duration(to: .now) < cacheLifetime {
            return cached
        }
        return try await database { try await pool.withConnection { try self.load(on: $0) } }
    }

    /// Retires the active key at `now` and makes a new active one; returns (new, retired).
    func rotate(now: Date, on connection: PostgresConnection) throws -> (active: Row, retired: Row) {
        _ = try connection.execute("LOCK TABLE links.keys IN SHARE ROW EXCLUSIVE MODE")
        let existing = try connection.query("SELECT id, created_at FROM links.keys WHERE retired_at IS NULL")
        guard let old = existing.first else {
            throw RPCError(.failedPrecondition, "there is no active link-signing key to rotate")
        }
        let oldId: String = try old.decode("id")
        let all = Set(try connection.query("SELECT id FROM links.keys").map { try $0.decode("id", as: String.self) })
        _ = try connection.execute("UPDATE links.keys SET retired_at = \(now) WHERE id = \(oldId)")
        let key = try insertNewKey(now: now, avoiding: all, on: connection)
        return (
            Row(id: key.id, createdAt: now, retiredAt: nil),
            Row(id: oldId, createdAt: try old.decode("created_at"), retiredAt: now)
        )
    }

    /// Forgets the in-memory ring (after a rotation, so the next call reads the table).
    func invalidate() { cache.withLock { $0 = nil } }

    /// The public facts of a key row at `now`.
    func info(_ row: Row) -> Rampart_Links_V1_SigningKeyInfo {
        var info = Rampart_Links_V1_SigningKeyInfo()
        info.id = row.id
        info.active = row.retiredAt == nil
        info.createdUnixMs = row.createdAt.unixMillis
        if let retiredAt = row.retiredAt {
            info.retiredUnixMs = retiredAt.unixMillis
            info.verifiesUntilUnixMs = retiredAt.addingTimeInterval(TimeInterval(maxValidity.components.seconds)).unixMillis
        }
        return info
    }

    private func insertNewKey(now: Date, avoiding ids: Set<String>, on connection: PostgresConnection) throws -> SigningKey {
        var key = SigningKey.generate()
        while ids.contains(key.id) { key = SigningKey.generate() }
        let sealed = key.secret.withUnsafeBytes { masterKey.seal(secret: Array($0), context: Self.context(key.id)) }
        _ = try connection.execute(
            """
            INSERT INTO links.keys (id, sealed, master_key_id, created_at)
            VALUES (\(key.id), \(sealed), \(masterKey.id), \(now))
            """)
        return key
    }
}
