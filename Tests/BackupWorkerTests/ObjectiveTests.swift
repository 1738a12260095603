import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBasics
import RampartProto
import RampartTesting
import Testing

@testable import BackupWorkerService

private let hour: Int64 = 3600
private let now = Date(timeIntervalSince1970: 1_800_000_000)

/// A physical device (supported), or a virtual one on KVM (refused by B2).
private func device(_ name: String, kvm: Bool = false, registeredDaysAgo: Double = 30) -> Rampart_Inventory_V1_Device {
    var device = Rampart_Inventory_V1_Device()
    device.id = "id-\(name)"
    device.name = name
    device.platform = kvm ? .virtual : .physical
    if kvm { device.hypervisor = .kvm }
    device.registeredUnixMs = now.addingTimeInterval(-registeredDaysAgo * 86_400).unixMillis
    return device
}

@Suite("P16: a device's last good backup against its objective (pure, injected clock)")
struct ObjectiveDecisionTests {
    @Test("P16: state from the last good backup, the objective and now: ok up to the objective, stale after it; never until an objective after registration, then stale; unsupported (B2) always")
    func state() {
        func state(supported: Bool = true, ago: Int64?, registeredAgo: Int64? = 1000 * hour, objective: Int64 = 36 * hour)
            -> Rampart_Backup_V1_ObjectiveState
        {
            BackupObjective.state(
                supported: supported, lastGood: ago.map { now.addingTimeInterval(-TimeInterval($0)) },
                registered: registeredAgo.map { now.addingTimeInterval(-TimeInterval($0)) }, objectiveSeconds: objective, now: now)
        }
        #expect(state(ago: 0) == .ok)
        #expect(state(ago: 36 * hour) == .ok, "exactly at the objective is still within it")
        #expect(state(ago: 36 * hour + 1) == .stale)
        #expect(state(ago: 8 * 24 * hour, objective: BackupObjective.defaultSeconds) == .ok, "the default is 8 days")
        #expect(state(ago: 8 * 24 * hour + 1, objective: BackupObjective.defaultSeconds) == .stale)
        #expect(state(ago: -60) == .ok, "a backup stamped in the future (clock skew) is not stale")
        #expect(state(ago: nil, registeredAgo: hour) == .never)
        #expect(state(ago: nil, registeredAgo: 36 * hour + 1) == .stale, "never backed up an objective after registration")
        #expect(state(ago: nil, registeredAgo: nil) == .never)
        #expect(state(supported: false, ago: nil) == .unsupported)
        #expect(state(supported: false, ago: 1000 * hour) == .unsupported, "an unsupported device is never stale")
    }

    @Test("P16: a crossing is said once: stale when it crosses, fresh when it comes back, nothing while it stays")
    func crossing() {
        #expect(BackupObjective.crossing(wasStale: false, state: .stale) == .stale)
        #expect(BackupObjective.crossing(wasStale: true, state: .stale) == nil)
        #expect(BackupObjective.crossing(wasStale: true, state: .ok) == .fresh)
        #expect(BackupObjective.crossing(wasStale: false, state: .ok) == nil)
        #expect(BackupObjective.crossing(wasStale: false, state: .never) == nil)
        #expect(BackupObjective.crossing(wasStale: true, state: .never) == .fresh, "never backed up, its objective raised")
        #expect(BackupObjective.crossing(wasStale: false, state: .unsupported) == nil)
        #expect(BackupObjective.Crossing.stale.topic == "backup.device.stale")
        #expect(BackupObjective.Crossing.fresh.topic == "backup.device.fresh")
    }

    @Test("P16: objectives are written 8d, 36h, 1d12h, 90m; from 1s to 366d; ages read back the same way")
    func objectiveText() {
        #expect(BackupAPI.parseObjective("8d") == 691_200)
        #expect(BackupAPI.parseObjective("36h") == 129_600)
        #expect(BackupAPI.parseObjective("1d12h") == 129_600)
        #expect(BackupAPI.parseObjective("90m") == 5400)
        #expect(BackupAPI.parseObjective("5s") == 5)
        for bad in ["", "0s", "367d", "12", "h", "1h1d", "-1h", "1.5h"] {
            #expect(BackupAPI.parseObjective(bad) == nil, "\(bad)")
        }
        #expect(DurationText.describe(seconds: 129_600) == "1d12h")
        #expect(DurationText.describe(seconds: 3 * 86_400 + 4 * 3600 + 5 * 60 + 6) == "3d4h")
        #expect(DurationText.describe(seconds: 0) == "0s")
        #expect(DurationText.describe(seconds: 691_200, parts: 4) == "8d")
    }
}

/// The `backup` schema in a throwaway database, migrated on a thread of its own.
private func migratedDatabase(_ logger: Logger) async throws -> PostgresPool {
    let connectionString = try await onOwnThread { () throws -> String in
        let connectionString = try TestDatabase.create()
        let connection = try PostgresConnection(connectionString: connectionString)
        try BackupService.migrate(connection: connection, logger: logger)
        return connectionString
    }
    return PostgresPool(connectionString: connectionString, size: 8, logger: logger)
}

/// Inserts a stored backup of `owner` (a bundle when `members` are given) created `ago` seconds before `now`.
private func insertBackup(
    _ pool: PostgresPool, owner: String, members: [String] = [], ago: TimeInterval, id: String = UUID().uuidString.lowercased()
) async throws -> String {
    let membersJSON = "[" + members.map { #"{"deviceId":"id-\#($0)","deviceName":"\#($0)","role":"cluster-data","fileName":"\#($0).tar","size":1,"sha256":"x"}"# }.joined(separator: ",") + "]"
    let created = now.addingTimeInterval(-ago)
    try await pool.transaction { connection in
        try connection.execute(
            """
            INSERT INTO backup.backups (id, job_id, task_id, owner_id, owner_name, role, file_name, size, sha256, object_id,
                software_version, software_patch, members, created_at)
            VALUES (\(id)::uuid, gen_random_uuid(), gen_random_uuid(), \(members.isEmpty ? "id-\(owner)" : "cl-\(owner)"), \(owner),
                \(members.isEmpty ? "standalone" : ""), \(owner + ".tar"), 1, 'x', \(id), '7.4.1', 0, \(membersJSON)::jsonb, \(created))
            """)
    }
    return id
}

/// How many events of `topic` the outbox holds for `subject`.
private func events(_ pool: PostgresPool, _ topic: String, _ subject: String) async throws -> Int {
    let count = try await pool.withConnection { connection -> Int64 in
        guard let row = try connection.query(
            "SELECT count(*)::bigint AS n FROM events.outbox WHERE topic = \(topic) AND subject = \(subject)").first
        else { return 0 }
        return try row.decode("n", as: Int64.self)
    }
    return Int(count)
}

@Suite("P16: last good backups, objectives and crossings in PostgreSQL")
struct ObjectiveStoreTests {
    @Test("P16: the last good backup is the device's newest own file, or for a cluster node the newest bundle holding its file; states and counts for the fleet in one call")
    func lastGood() async throws {
        let logger = Logger(label: "objective-store-tests")
        let pool = try await migratedDatabase(logger)
        let old = try await insertBackup(pool, owner: "fw-1", ago: 10 * 86_400)
        let newest = try await insertBackup(pool, owner: "fw-1", ago: 86_400)
        let full = try await insertBackup(pool, owner: "cl", members: ["cl-n1", "cl-n2"], ago: 3 * 86_400)
        let partial = try await insertBackup(pool, owner: "cl", members: ["cl-n1"], ago: 2 * 86_400)
        _ = try await insertBackup(pool, owner: "fw-stale", ago: 9 * 86_400)
        let devices = [
            device("fw-1"), device("cl-n1"), device("cl-n2"), device("fw-stale"), device("fw-new", registeredDaysAgo: 1),
            device("fw-kvm", kvm: true),
        ]
        let response = try await pool.serve { connection in
            try ObjectiveStore.statuses(devices: devices, defaultObjective: BackupObjective.defaultSeconds, now: now, on: connection)
        }
        let byName = Dictionary(uniqueKeysWithValues: response.devices.map { ($0.deviceName, $0) })
        #expect(byName["fw-1"]?.lastBackupID == newest && byName["fw-1"]?.lastBackupID != old)
        #expect(byName["fw-1"]?.ageSeconds == 86_400 && byName["fw-1"]?.state == .ok)
        #expect(byName["cl-n1"]?.lastBackupID == partial)
        #expect(byName["cl-n2"]?.lastBackupID == full, "a node left out of the newest bundle keeps the older one")
        #expect(byName["fw-stale"]?.state == .stale)
        #expect(byName["fw-new"]?.state == .never && byName["fw-new"]?.lastBackupID == "")
        #expect(byName["fw-kvm"]?.state == .unsupported && byName["fw-kvm"]?.reason.contains("KVM") == true)
        #expect((response.ok, response.stale, response.never, response.unsupported) == (3, 1, 1, 1))
        #expect(response.defaultObjectiveSeconds == BackupObjective.defaultSeconds)

        // A device's own objective wins over the default; the default a worker stored wins over the caller's.
        try await pool.serve { connection in
            try ObjectiveStore.setObjective(deviceId: "id-fw-1", seconds: 3600, caller: "test", on: connection)
            try ObjectiveStore.storeDefault(20 * 86_400, on: connection)
        }
        let after = try await pool.serve { connection in
            try ObjectiveStore.statuses(devices: devices, defaultObjective: BackupObjective.defaultSeconds, now: now, on: connection)
        }
        let fw1 = try #require(after.devices.first { $0.deviceName == "fw-1" })
        #expect(fw1.state == .stale && fw1.objectiveSeconds == 3600 && fw1.objectiveOverridden)
        let stale = try #require(after.devices.first { $0.deviceName == "fw-stale" })
        #expect(stale.state == .ok && stale.objectiveSeconds == 20 * 86_400 && !stale.objectiveOverridden)
        #expect(after.defaultObjectiveSeconds == 20 * 86_400)
        await pool.close()
    }

    @Test("P16: eight checks at once say a device's crossing once (backup.device.stale); the next good backup says fresh once, in its own transaction")
    func saidOnce() async throws {
        let logger = Logger(label: "objective-store-tests")
        let pool = try await migratedDatabase(logger)
        _ = try await insertBackup(pool, owner: "fw-1", ago: 9 * 86_400)
        let devices = [device("fw-1"), device("fw-2", kvm: true)]
        let statuses = try await pool.serve { connection in
            try ObjectiveStore.statuses(devices: devices, defaultObjective: BackupObjective.defaultSeconds, now: now, on: connection)
        }
        #expect(statuses.devices.map(\.state) == [.stale, .unsupported])

        let said = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await pool.serve { try ObjectiveStore.applyCrossings(statuses.devices, caller: "test", on: $0) }.count
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(said == 1)
        #expect(try await events(pool, "backup.device.stale", "id-fw-1") == 1)
        #expect(try await events(pool, "backup.device.stale", "id-fw-2") == 0, "an unsupported device is never stale")
        // Checked again, still stale: nothing more is said.
        let again = try await pool.serve { try ObjectiveStore.applyCrossings(statuses.devices, caller: "test", on: $0) }
        #expect(again.isEmpty)

        // The backup-stored path: fresh once, however often it is told.
        for _ in 0..<3 {
            try await pool.serve { try ObjectiveStore.markFresh([(id: "id-fw-1", name: "fw-1")], backupId: "b", on: $0) }
        }
        #expect(try await events(pool, "backup.device.fresh", "id-fw-1") == 1)
        // Stale again later: said again, once.
        let later = try await pool.serve { try ObjectiveStore.applyCrossings(statuses.devices, caller: "test", on: $0) }
        #expect(later == [BackupObjective.Said(device: "fw-1", crossing: .stale)])
        #expect(try await events(pool, "backup.device.stale", "id-fw-1") == 2)
        await pool.close()
    }
}
