import Foundation
import Logging
import Postgres
import RampartBus
import RampartCrypto
import RampartLinks
import RampartRPC
import RampartTesting
import Testing

@testable import LinkSignerService

/// The link-signing keys at rest (L2): sealed under the master key, one active, rotation that keeps
/// the old key verifying only while its links can live. Against a real PostgreSQL.
@Suite("L2: link-signing keys in PostgreSQL")
struct KeyStoreTests {
    static let logger = Logger(label: "link-signer-tests")

    static func database() throws -> PostgresConnection {
        let connection = try PostgresConnection(connectionString: try TestDatabase.create())
        try LinkSignerService.migrate(connection: connection, logger: logger)
        return connection
    }

    @Test("L2: the first start makes one active key; a second start (another instance) makes none")
    func firstKey() throws {
        let connection = try Self.database()
        let master = MasterKey.generate()
        let store = KeyStore(masterKey: master)
        try store.ensureActiveKey(now: Date(), on: connection, logger: Self.logger)
        try KeyStore(masterKey: master).ensureActiveKey(now: Date(), on: connection, logger: Self.logger)
        let loaded = try store.load(on: connection)
        #expect(loaded.rows.count == 1)
        #expect(loaded.rows.first?.retiredAt == nil)
        #expect(loaded.rows.first?.id == loaded.ring.active.id)
    }

    @Test("L2: a key is kept sealed: the stored bytes hold no part of the secret, and open only under the master key")
    func sealedAtRest() throws {
        let connection = try Self.database()
        let master = MasterKey.generate()
        let store = KeyStore(masterKey: master)
        try store.ensureActiveKey(now: Date(), on: connection, logger: Self.logger)
        let key = try store.load(on: connection).ring.active
        let secret = key.secret.withUnsafeBytes { Array($0) }
        let row = try #require(try connection.query("SELECT sealed FROM links.keys WHERE id = \(key.id)").first)
        let sealed: Data = try row.decode("sealed")
        #expect(sealed.count == 12 + 32 + 16)
        for start in stride(from: 0, to: secret.count - 8, by: 4) {
            #expect(sealed.range(of: Data(secret[start..<(start + 8)])) == nil)
        }
        #expect(try master.unseal(sealed, context: KeyStore.context(key.id)) == secret)
    }

    @Test("L2: another master key refuses to load the keys, with a message naming both key ids")
    func wrongMasterKey() throws {
        let connection = try Self.database()
        let master = MasterKey.generate()
        try KeyStore(masterKey: master).ensureActiveKey(now: Date(), on: connection, logger: Self.logger)
        let other = MasterKey.generate()
        do {
            _ = try KeyStore(masterKey: other).load(on: connection)
            Issue.record("keys loaded under the wrong master key")
        } catch let error as RPCError {
            #expect(error.code == .failedPrecondition)
            #expect(error.message.contains(master.id) && error.message.contains(other.id), "\(error.message)")
        }
    }

    @Test("L2: a damaged sealed key is reported as data loss, never used")
    func damagedKey() throws {
        let connection = try Self.database()
        let master = MasterKey.generate()
        try KeyStore(masterKey: master).ensureActiveKey(now: Date(), on: connection, logger: Self.logger)
        // Every bit of one byte flipped, so the key is damaged whatever that byte was.
        _ = try connection.execute("UPDATE links.keys SET sealed = set_byte(sealed, 19, get_byte(sealed, 19) # 255)")
        do {
            _ = try KeyStore(masterKey: master).load(on: connection)
            Issue.record("a damaged key loaded")
        } catch let error as RPCError {
            #expect(error.code == .dataLoss, "\(error)")
        }
    }

    @Test("L2: rotation retires the active key at that time and makes a new one; the old one verifies for 6 h more")
    func rotation() throws {
        let connection = try Self.database()
        let store = KeyStore(masterKey: MasterKey.generate())
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        try store.ensureActiveKey(now: start, on: connection, logger: Self.logger)
        let first = try store.load(on: connection).ring.active
        let rotatedAt = start.addingTimeInterval(60)
        let (active, retired) = try connection.transaction { try store.rotate(now: rotatedAt, on: $0) }
        #expect(retired.id == first.id && active.id != first.id)
        let loaded = try store.load(on: connection)
        #expect(loaded.ring.active.id == active.id)
        #expect(loaded.ring.usable(at: rotatedAt.addingTimeInterval(6 * 3600)).map(\.id).contains(first.id))
        #expect(!loaded.ring.usable(at: rotatedAt.addingTimeInterval(6 * 3600 + 1)).map(\.id).contains(first.id))
        let info = store.info(retired)
        #expect(!info.active && info.retiredUnixMs == rotatedAt.unixMillis)
        #expect(info.verifiesUntilUnixMs == rotatedAt.unixMillis + 6 * 3_600_000)
        #expect(try connection.query("SELECT count(*) AS n FROM links.keys WHERE retired_at IS NULL").first?.decode("n", as: Int64.self) == 1)
    }

    @Test("L2: the clock offset file moves link-signer's clock; no file or a bad one means no offset")
    func clock() throws {
        let path = NSTemporaryDirectory() + "rampart-clock-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let clock = LinkClock(offsetFile: path)
        #expect(clock.offset() == 0)
        try Data("7201.5\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(clock.offset() == 7201.5)
        #expect(abs(clock.now().timeIntervalSinceNow - 7201.5) < 1)
        try Data("soon".utf8).write(to: URL(fileURLWithPath: path))
        #expect(clock.offset() == 0)
        #expect(LinkClock().offset() == 0)
    }
}
