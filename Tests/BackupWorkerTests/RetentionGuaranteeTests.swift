import Foundation
import Logging
import Postgres
import RampartBus
import RampartProto
import RampartTesting
import Testing

@testable import BackupWorkerService

@Suite("P16: retention never deletes a device's last good backup (Pruner over PostgreSQL)")
struct RetentionGuaranteeTests {
    /// Inserts a backup of `owner` (`members`: a cluster bundle holding those nodes' files), `daysAgo` old.
    static func insert(
        _ pool: PostgresPool, owner: String, members: [String] = [], daysAgo: Double
    ) async throws -> String {
        let id = UUID().uuidString.lowercased()
        let membersJSON = "[" + members.map {
            #"{"deviceId":"id-\#($0)","deviceName":"\#($0)","role":"cluster-data","fileName":"\#($0).tar","size":1,"sha256":"x"}"#
        }.joined(separator: ",") + "]"
        let created = Date().addingTimeInterval(-daysAgo * 86_400)
        try await pool.transaction { connection in
            try connection.execute(
                """
                INSERT INTO backup.backups (id, job_id, task_id, owner_id, owner_name, role, file_name, size, sha256, object_id,
                    software_version, software_patch, members, created_at)
                VALUES (\(id)::uuid, gen_random_uuid(), gen_random_uuid(), \("id-" + owner), \(owner), '', \(owner + ".tar"), 1, 'x',
                    \(id), '7.4.1', 0, \(membersJSON)::jsonb, \(created))
                """)
        }
        return id
    }

    @Test("P16: with keep-last 1 and nothing else, each device keeps its newest file, and a cluster node left out of the newer bundles (B10) keeps the older bundle holding its file")
    func lastGoodKept() async throws {
        let logger = Logger(label: "retention-guarantee-tests")
        let connectionString = try await onOwnThread { () throws -> String in
            let connectionString = try TestDatabase.create()
            let connection = try PostgresConnection(connectionString: connectionString)
            try BackupService.migrate(connection: connection, logger: logger)
            return connectionString
        }
        let pool = PostgresPool(connectionString: connectionString, size: 2, logger: logger)
        defer { Task { await pool.close() } }
        // Objects are deleted through storage; a closed client makes that a logged warning, as when storage is away.
        let client = BusClient(endpoint: "inproc://nobody", security: .plain, caller: "retention-guarantee-tests", logger: logger)
        client.close()
        let policy = try RetentionPolicy(keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0)
        let pruner = Pruner(pool: pool, client: client, policy: policy, logger: logger)

        let fwOld = try await Self.insert(pool, owner: "fw-1", daysAgo: 3)
        let fwNew = try await Self.insert(pool, owner: "fw-1", daysAgo: 1)
        let full = try await Self.insert(pool, owner: "cl", members: ["cl-n1", "cl-n2", "cl-n3"], daysAgo: 5)
        let partialOld = try await Self.insert(pool, owner: "cl", members: ["cl-n1", "cl-n3"], daysAgo: 4)
        let partialNew = try await Self.insert(pool, owner: "cl", members: ["cl-n1"], daysAgo: 2)

        let dryRun = try await pruner.prune(owner: nil, dryRun: true, caller: "test")
        #expect(Set(dryRun.deleted.map(\.id)) == [fwOld], "only fw-1's older file goes: \(dryRun.deleted.map(\.fileName))")
        let pruned = try await pruner.prune(owner: nil, dryRun: false, caller: "test")
        #expect(Set(pruned.deleted.map(\.id)) == [fwOld])
        let left = try await pool.withConnection { connection in
            try BackupStore.listBackups(owner: nil, jobId: nil, limit: 100, on: connection).map(\.id)
        }
        // cl-n2's last good is the full bundle, cl-n3's the older partial one, cl-n1's the newest.
        #expect(Set(left) == [fwNew, full, partialOld, partialNew])

        // The same by owner: pruning the cluster alone keeps them too.
        let byOwner = try await pruner.prune(owner: "id-cl", dryRun: false, caller: "test")
        #expect(byOwner.deleted.isEmpty, "\(byOwner.deleted.map(\.id))")

        // And the last good backup the objectives see is what retention kept.
        let statusIds = try await pool.withConnection { connection in
            try ObjectiveStore.lastGood(deviceIds: ["id-fw-1", "id-cl-n1", "id-cl-n2", "id-cl-n3"], on: connection).mapValues { $0.id }
        }
        #expect(statusIds == ["id-fw-1": fwNew, "id-cl-n1": partialNew, "id-cl-n2": full, "id-cl-n3": partialOld])
    }
}
