import Foundation
import Logging
import Postgres
import RampartBasics
import RampartProto
import RampartTesting
import Testing

@testable import BackupWorkerService

@Suite("P18: drill results in PostgreSQL, and what they do to the last good backup")
struct DrillStoreTests {
    static func database(_ logger: Logger) async throws -> PostgresPool {
        let connectionString = try await onOwnThread { () throws -> String in
            let connectionString = try TestDatabase.create()
            let connection = try PostgresConnection(connectionString: connectionString)
            try BackupService.migrate(connection: connection, logger: logger)
            return connectionString
        }
        return PostgresPool(connectionString: connectionString, size: 4, logger: logger)
    }

    /// A backup of device `owner` (a bundle of `members` when given), `ago` seconds old.
    static func insertBackup(_ pool: PostgresPool, owner: String, members: [String] = [], ago: TimeInterval) async throws -> String {
        let id = UUID().uuidString.lowercased()
        let membersJSON = "[" + members.map {
            #"{"deviceId":"id-\#($0)","deviceName":"\#($0)","role":"cluster-data","fileName":"\#($0).tar","size":1,"sha256":"x"}"#
        }.joined(separator: ",") + "]"
        let created = Date().addingTimeInterval(-ago)
        try await pool.transaction { connection in
            try connection.execute(
                """
                INSERT INTO backup.backups (id, job_id, task_id, owner_id, owner_name, role, file_name, size, sha256, object_id,
                    software_version, software_patch, members, created_at)
                VALUES (\(id)::uuid, gen_random_uuid(), gen_random_uuid(), \(members.isEmpty ? "id-\(owner)" : "cl-\(owner)"),
                    \(owner), \(members.isEmpty ? "standalone" : ""), \(owner + ".tar"), 1, 'x', \(id), '7.4.1', 0,
                    \(membersJSON)::jsonb, \(created))
                """)
        }
        return id
    }

    static func drill(_ pool: PostgresPool, backup: String, device: String, passed: Bool) async throws {
        var result = Rampart_Backup_V1_DrillResult()
        result.backupID = backup
        result.deviceID = "id-\(device)"
        result.deviceName = device
        result.fileName = "\(device).tar"
        result.passed = passed
        result.reason = passed ? "" : "storage: damaged"
        result.jobID = UUID().uuidString.lowercased()
        result.taskID = UUID().uuidString.lowercased()
        result.checks = [DrillVerdict.check("storage", passed: passed, passed ? "read" : "damaged")]
        let recorded = result
        try await pool.transaction { try DrillStore.record([recorded], on: $0) }
    }

    static func lastGood(_ pool: PostgresPool, _ devices: [String]) async throws -> [String: String] {
        try await pool.serve { connection in
            try ObjectiveStore.lastGood(deviceIds: devices.map { "id-\($0)" }, on: connection).mapValues(\.id)
        }
    }

    @Test("P16, P18: a (backup, device) whose latest drill failed is not the device's last good backup; a later passing drill makes it good again; each result is written with its event")
    func lastGood() async throws {
        let logger = Logger(label: "drill-store-tests")
        let pool = try await Self.database(logger)
        let old = try await Self.insertBackup(pool, owner: "fw", ago: 7200)
        let new = try await Self.insertBackup(pool, owner: "fw", ago: 3600)
        let oldBundle = try await Self.insertBackup(pool, owner: "cl", members: ["n1", "n2"], ago: 7200)
        let newBundle = try await Self.insertBackup(pool, owner: "cl", members: ["n1", "n2"], ago: 3600)
        #expect(try await Self.lastGood(pool, ["fw", "n1", "n2"]) == ["id-fw": new, "id-n1": newBundle, "id-n2": newBundle])

        try await Self.drill(pool, backup: new, device: "fw", passed: false)
        try await Self.drill(pool, backup: newBundle, device: "n1", passed: true)
        try await Self.drill(pool, backup: newBundle, device: "n2", passed: false)
        #expect(
            try await Self.lastGood(pool, ["fw", "n1", "n2"]) == ["id-fw": old, "id-n1": newBundle, "id-n2": oldBundle],
            "a bundle that fails for one node is still the other node's good backup")
        let failed = try await pool.serve { try DrillStore.failedKeys(on: $0) }
        #expect(failed == ["\(new)/id-fw", "\(newBundle)/id-n2"])

        // Drilled again and passed: good again.
        try await Self.drill(pool, backup: new, device: "fw", passed: true)
        #expect(try await Self.lastGood(pool, ["fw"]) == ["id-fw": new])

        let (latest, events, last) = try await pool.serve { connection in
            let latest = try DrillStore.latest(backupIds: [new, newBundle], on: connection)
            let events = try connection.query(
                "SELECT topic, subject FROM events.outbox WHERE topic LIKE 'backup.drill.%' ORDER BY id"
            ).map { "\(try $0.decode("topic", as: String.self)) \(try $0.decode("subject", as: String.self))" }
            let last = try DrillStore.lastDrills(deviceIds: ["id-fw", "id-n2"], on: connection)
            return (latest, events, last)
        }
        #expect(latest[new]?.map(\.passed) == [true], "only the latest drill of a (backup, device) is its result")
        #expect(latest[newBundle]?.map(\.deviceName) == ["n1", "n2"])
        #expect(events == [
            "backup.drill.failed \(new)", "backup.drill.passed \(newBundle)", "backup.drill.failed \(newBundle)",
            "backup.drill.passed \(new)",
        ])
        #expect(last["id-fw"]?.passed == true && last["id-n2"]?.passed == false)
        #expect(last["id-n2"]?.checks.first?.detail == "damaged")
    }

    @Test("P16: records kept from before backup.holdings existed are found as last good backups once it is added (migration 6 fills it), and new ones by its trigger")
    func holdingsFilledForOlderRecords() async throws {
        let logger = Logger(label: "drill-store-tests")
        let before = Array(BackupMigrations.all.prefix { $0.version < 6 })
        let connectionString = try await onOwnThread { () throws -> String in
            let connectionString = try TestDatabase.create()
            let connection = try PostgresConnection(connectionString: connectionString)
            try Migrator.migrate(schema: "backup", migrations: before, connection: connection, logger: logger)
            return connectionString
        }
        let pool = PostgresPool(connectionString: connectionString, size: 2, logger: logger)
        let standalone = try await Self.insertBackup(pool, owner: "fw", ago: 3600)
        let bundle = try await Self.insertBackup(pool, owner: "cl", members: ["n1", "n2"], ago: 3600)
        let older = try await Self.insertBackup(pool, owner: "cl", members: ["n3"], ago: 7200)
        try await onOwnThread {
            try BackupService.migrate(connection: try PostgresConnection(connectionString: connectionString), logger: logger)
        }
        #expect(
            try await Self.lastGood(pool, ["fw", "n1", "n2", "n3", "nobody"])
                == ["id-fw": standalone, "id-n1": bundle, "id-n2": bundle, "id-n3": older])
        let newer = try await Self.insertBackup(pool, owner: "cl", members: ["n3", "n1"], ago: 60)
        #expect(try await Self.lastGood(pool, ["n1", "n2", "n3"]) == ["id-n1": newer, "id-n2": bundle, "id-n3": newer])
        // Deleted with its backup (retention): the device's last good backup is the one before again.
        try await pool.transaction { try $0.execute("DELETE FROM backup.backups WHERE id = \(newer)::uuid") }
        #expect(try await Self.lastGood(pool, ["n1", "n3"]) == ["id-n1": bundle, "id-n3": older])
    }
}
