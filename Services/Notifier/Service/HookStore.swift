import Foundation
import Logging
import Postgres
import RampartBasics
import RampartCrypto
import RampartProto

/// Hook URLs and secrets sealed at rest under the notifier's master key (AES-256-GCM, each bound to its
/// hook's id and field, so a sealed value cannot be moved to another row or field): a copy of the
/// database alone gives neither a URL's credentials nor an HMAC key (P15, docs/notifications.md).
public struct HookSealing: Sendable {
    let key: MasterKey

    public init(key: MasterKey) { self.key = key }

    /// The key's id (a prefix of its SHA-256), stored with each hook it sealed.
    public var keyId: String { key.id }

    func seal(_ text: String, _ field: String, hook: UUID) -> Data {
        key.seal(secret: Array(text.utf8), context: Self.context(field, hook))
    }

    func open(_ sealed: Data, _ field: String, hook: UUID, sealedBy: String) throws -> String {
        do {
            return String(decoding: try key.unseal(sealed, context: Self.context(field, hook)), as: UTF8.self)
        } catch {
            throw HookSealError(
                description: "hook \(hook.uuidString.lowercased()): its \(field) was sealed under master key \(sealedBy), "
                    + "this notifier has \(key.id) (--master-key): start it with the key the hook was added under")
        }
    }

    private static func context(_ field: String, _ hook: UUID) -> String {
        "notify.hook.\(field):\(hook.uuidString.lowercased())"
    }
}

/// A hook whose sealed URL or secret does not open under this notifier's master key.
public struct HookSealError: Error, CustomStringConvertible {
    public var description: String
}

/// A hook as the delivery loop needs it.
public struct HookRecord: Sendable, Equatable {
    public var id: UUID
    public var url: String
    public var topics: [String]
    public var secret: String
    public var lastSeq: UInt64
}

/// The `notify.hooks` table: what the handlers and the delivery loop read and write.
enum HookStore {
    static let columns =
        "id, url_masked, signed, topics, created_at, last_seq, last_delivered_at, failures, last_error"
    /// What the delivery loop reads of a hook.
    static let recordColumns = "id, url_sealed, secret_sealed, key_id, topics, last_seq"

    static func insert(
        id: UUID, url: String, topics: [String], secret: String, createdBy: String, lastSeq: UInt64, now: Date,
        sealing: HookSealing, on connection: PostgresConnection
    ) throws -> Rampart_Notify_V1_Hook {
        let (urlSealed, secretSealed) = (sealing.seal(url, "url", hook: id), sealing.seal(secret, "secret", hook: id))
        let rows = try connection.query(
            """
            INSERT INTO notify.hooks (id, url, url_sealed, url_masked, secret, secret_sealed, signed, key_id, topics,
                created_at, created_by, last_seq)
            VALUES (\(id), '', \(urlSealed), \(URLMasking.masked(url)), '', \(secretSealed), \(!secret.isEmpty),
                \(sealing.keyId), \(topics), \(now), \(createdBy), \(Int64(clamping: lastSeq)))
            RETURNING \(unsafeRaw: columns)
            """)
        guard let row = rows.first else { throw PostgresError(kind: .query, message: "INSERT returned no row") }
        return try hook(from: row)
    }

    static func list(on connection: PostgresConnection) throws -> [Rampart_Notify_V1_Hook] {
        try connection.query("SELECT \(unsafeRaw: columns) FROM notify.hooks ORDER BY created_at, id").map(hook(from:))
    }

    static func delete(_ id: UUID, on connection: PostgresConnection) throws -> Bool {
        try connection.execute("DELETE FROM notify.hooks WHERE id = \(id)") > 0
    }

    static func record(_ id: UUID, sealing: HookSealing, on connection: PostgresConnection) throws -> HookRecord? {
        try connection.query("SELECT \(unsafeRaw: recordColumns) FROM notify.hooks WHERE id = \(id)")
            .first.map { try record(from: $0, sealing: sealing) }
    }

    /// Seals the URL and secret of hooks stored before they were sealed (schema `notify` v1), once, at
    /// start; their plain columns are emptied in the same statement.
    static func sealPlainHooks(_ sealing: HookSealing, on connection: PostgresConnection, logger: Logger) throws {
        let plain = Array(try connection.query("SELECT id, url, secret FROM notify.hooks WHERE url_sealed IS NULL"))
        for row in plain {
            let (id, url, secret): (UUID, String, String) = (try row.decode("id"), try row.decode("url"), try row.decode("secret"))
            try connection.execute(
                """
                UPDATE notify.hooks SET url_sealed = \(sealing.seal(url, "url", hook: id)), url_masked = \(URLMasking.masked(url)),
                    secret_sealed = \(sealing.seal(secret, "secret", hook: id)), signed = \(!secret.isEmpty),
                    key_id = \(sealing.keyId), url = '', secret = ''
                WHERE id = \(id) AND url_sealed IS NULL
                """)
        }
        if !plain.isEmpty {
            logger.notice("sealed the URLs and secrets of hooks stored in the clear", metadata: ["hooks": "\(plain.count)"])
        }
    }

    static func ids(on connection: PostgresConnection) throws -> [UUID] {
        try connection.query("SELECT id FROM notify.hooks ORDER BY created_at, id").map { try $0.decode("id") }
    }

    /// Takes or renews `owner`'s lease on hook `id` for `seconds`; the hook as stored, or nil when it is
    /// gone or another instance holds it.
    static func claim(
        _ id: UUID, owner: String, seconds: Int, sealing: HookSealing, on connection: PostgresConnection
    ) throws -> HookRecord? {
        try connection.query(
            """
            UPDATE notify.hooks SET owner = \(owner), lease_until = now() + make_interval(secs => \(seconds))
            WHERE id = \(id) AND (owner = \(owner) OR lease_until < now())
            RETURNING \(unsafeRaw: recordColumns)
            """
        ).first.map { try record(from: $0, sealing: sealing) }
    }

    /// Gives up every lease of `owner` (a graceful stop), so another instance takes its hooks at once.
    static func release(owner: String, on connection: PostgresConnection) throws {
        _ = try connection.execute("UPDATE notify.hooks SET lease_until = 'epoch' WHERE owner = \(owner)")
    }

    /// Hook `id` handled everything through `seq`; `delivered`: the event `seq` was POSTed and answered 2xx.
    /// Only forward, and only while `owner` holds the hook. False when it no longer does (or the hook is gone).
    static func advance(
        _ id: UUID, to seq: UInt64, delivered: Bool, owner: String, now: Date, on connection: PostgresConnection
    ) throws -> Bool {
        let seq = Int64(clamping: seq)
        if delivered {
            return try connection.execute(
                """
                UPDATE notify.hooks SET last_seq = \(seq), last_delivered_at = \(now), failures = 0, last_error = ''
                WHERE id = \(id) AND owner = \(owner) AND last_seq < \(seq)
                """) > 0
        }
        return try connection.execute(
            """
            UPDATE notify.hooks SET last_seq = \(seq)
            WHERE id = \(id) AND owner = \(owner) AND last_seq < \(seq)
            """) > 0
    }

    /// An attempt to deliver to hook `id` failed for the `failures`-th time in a row.
    static func failed(_ id: UUID, failures: Int, error: String, on connection: PostgresConnection) throws {
        _ = try connection.execute(
            "UPDATE notify.hooks SET failures = \(failures), last_error = \(String(error.prefix(500))) WHERE id = \(id)")
    }

    static func record(from row: PostgresRow, sealing: HookSealing) throws -> HookRecord {
        let id: UUID = try row.decode("id")
        let keyId: String = try row.decode("key_id")
        return HookRecord(
            id: id, url: try sealing.open(try row.decode("url_sealed", as: Data.self), "url", hook: id, sealedBy: keyId),
            topics: try row.decode("topics"),
            secret: try sealing.open(try row.decode("secret_sealed", as: Data.self), "secret", hook: id, sealedBy: keyId),
            lastSeq: UInt64(try row.decode("last_seq", as: Int64.self)))
    }

    static func hook(from row: PostgresRow) throws -> Rampart_Notify_V1_Hook {
        var hook = Rampart_Notify_V1_Hook()
        hook.id = try row.decode("id", as: UUID.self).uuidString.lowercased()
        hook.url = try row.decode("url_masked")
        hook.topics = try row.decode("topics")
        hook.signed = try row.decode("signed")
        hook.createdUnixMs = try row.decode("created_at", as: Date.self).unixMillis
        hook.lastSeq = UInt64(try row.decode("last_seq", as: Int64.self))
        hook.lastDeliveredUnixMs = try row.decodeIfPresent("last_delivered_at", as: Date.self)?.unixMillis ?? 0
        hook.failures = UInt32(try row.decode("failures", as: Int32.self))
        hook.lastError = try row.decode("last_error")
        return hook
    }
}
