import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBasics
import RampartBus
import RampartDatabase
import RampartInventory
import RampartProto
import RampartRPC
import ServiceLifecycle

/// Rule P16's state in the `backup` schema: the installation's default objective
/// (`backup.settings`), each device's own (`backup.device_objectives`) and whether each device was last
/// said to be stale (`backup.device_freshness`, the row whose conditional update decides who says it).
enum ObjectiveStore {
    static let defaultObjectiveSetting = "default_objective_seconds"
    private static let lockKey: Int64 = 0x5241_4D50_4F42  // "RAMPOB"

    /// Taken by a check for its whole transaction (reading the backups, then flipping rows): two checks
    /// never interleave, and a backup being stored (``lockForStoring(on:)``) is either seen by the check
    /// or commits after it, so a check never says "stale" of a device whose new backup it did not see.
    static func lockForCheck(on connection: PostgresConnection) throws {
        _ = try connection.query("SELECT pg_advisory_xact_lock(\(lockKey))")
    }

    /// Taken by a transaction storing backup records (shared: stores never wait for each other).
    static func lockForStoring(on connection: PostgresConnection) throws {
        _ = try connection.query("SELECT pg_advisory_xact_lock_shared(\(lockKey))")
    }

    /// Records the default objective this worker was started with (the last worker started wins: every
    /// worker reads the stored one, so they agree); returns the value stored before, if any.
    @discardableResult
    static func storeDefault(_ seconds: Int64, on connection: PostgresConnection) throws -> Int64? {
        let before = try defaultObjective(on: connection)
        try connection.execute(
            """
            INSERT INTO backup.settings (name, value) VALUES (\(defaultObjectiveSetting), \(String(seconds)))
            ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
            WHERE backup.settings.value <> EXCLUDED.value
            """)
        return before
    }

    /// The stored default objective, nil before any worker stored one.
    static func defaultObjective(on connection: PostgresConnection) throws -> Int64? {
        try connection.query("SELECT value FROM backup.settings WHERE name = \(defaultObjectiveSetting)")
            .first.flatMap { Int64(try $0.decode("value", as: String.self)) }
    }

    /// Every device's own objective, by device id.
    static func objectives(on connection: PostgresConnection) throws -> [String: Int64] {
        var result: [String: Int64] = [:]
        for row in try connection.query("SELECT device_id, objective_seconds FROM backup.device_objectives") {
            result[try row.decode("device_id")] = try row.decode("objective_seconds", as: Int64.self)
        }
        return result
    }

    /// Sets (or with nil clears) a device's own objective.
    static func setObjective(deviceId: String, seconds: Int64?, caller: String, on connection: PostgresConnection) throws {
        if let seconds {
            try connection.execute(
                """
                INSERT INTO backup.device_objectives (device_id, objective_seconds, set_by) VALUES (\(deviceId), \(seconds), \(caller))
                ON CONFLICT (device_id) DO UPDATE SET objective_seconds = EXCLUDED.objective_seconds, set_by = EXCLUDED.set_by,
                    set_at = now()
                """)
        } else {
            try connection.execute("DELETE FROM backup.device_objectives WHERE device_id = \(deviceId)")
        }
    }

    /// The last good backup of each of `deviceIds`, in one query: the newest backup holding the device's
    /// file (`backup.holdings`: a standalone device's or an HA peer's own file, or a cluster bundle with its
    /// node's), leaving out a backup whose latest restore drill of that device failed (P18: it would not
    /// restore). One index probe per device, however many backups are kept.
    static func lastGood(deviceIds: [String], on connection: PostgresConnection) throws -> [String: (id: String, created: Date)] {
        guard !deviceIds.isEmpty else { return [:] }
        let rows = try connection.query(
            """
            SELECT devices.device_id, newest.id, newest.created_at
            FROM unnest(\(deviceIds)::text[]) AS devices(device_id)
            CROSS JOIN LATERAL (
                SELECT h.backup_id::text AS id, h.created_at FROM backup.holdings h
                WHERE h.device_id = devices.device_id
                  AND coalesce((SELECT d.passed FROM backup.drills d WHERE d.backup_id = h.backup_id
                                AND d.device_id = h.device_id ORDER BY d.drilled_at DESC LIMIT 1), true)
                ORDER BY h.created_at DESC, h.backup_id DESC
                LIMIT 1
            ) newest
            """)
        var result: [String: (id: String, created: Date)] = [:]
        for row in rows {
            result[try row.decode("device_id")] = (try row.decode("id"), try row.decode("created_at", as: Date.self))
        }
        return result
    }

    /// The devices recorded as stale (the last event said so), by id.
    static func staleDevices(on connection: PostgresConnection) throws -> Set<String> {
        Set(try connection.query("SELECT device_id FROM backup.device_freshness WHERE stale").map { try $0.decode("device_id") })
    }

    /// Every device of `devices` (inventory's list) against its objective at `now`: three queries
    /// whatever the fleet's size.
    static func statuses(
        devices: [Rampart_Inventory_V1_Device], defaultObjective: Int64, now: Date, on connection: PostgresConnection
    ) throws -> Rampart_Backup_V1_ListDeviceStatusResponse {
        let stored = try self.defaultObjective(on: connection) ?? defaultObjective
        let objectives = try self.objectives(on: connection)
        let last = try lastGood(deviceIds: devices.map(\.id), on: connection)
        var response = Rampart_Backup_V1_ListDeviceStatusResponse()
        response.defaultObjectiveSeconds = stored
        response.checkedUnixMs = now.unixMillis
        for device in devices.sorted(by: { $0.name < $1.name }) {
            var status = Rampart_Backup_V1_DeviceBackupStatus()
            status.deviceID = device.id
            status.deviceName = device.name
            let (supported, reason) = BackupSupportMatrix.evaluate(device)
            status.reason = reason
            status.objectiveSeconds = objectives[device.id] ?? stored
            status.objectiveOverridden = objectives[device.id] != nil
            status.registeredUnixMs = device.registeredUnixMs
            if let good = last[device.id] {
                status.lastBackupID = good.id
                status.lastBackupUnixMs = good.created.unixMillis
                status.ageSeconds = max(0, Int64(now.timeIntervalSince(good.created).rounded(.down)))
            }
            status.state = BackupObjective.state(
                supported: supported, lastGood: last[device.id]?.created,
                registered: device.registeredUnixMs > 0 ? Date(unixMillis: device.registeredUnixMs) : nil,
                objectiveSeconds: status.objectiveSeconds, now: now)
            switch status.state {
            case .ok: response.ok += 1
            case .stale: response.stale += 1
            case .never: response.never += 1
            case .unsupported: response.unsupported += 1
            case .unspecified, .UNRECOGNIZED: break
            }
            response.devices.append(status)
        }
        // P18: each device's latest restore drill.
        let drills = try DrillStore.lastDrills(deviceIds: response.devices.map(\.deviceID), on: connection)
        for index in response.devices.indices {
            if let drill = drills[response.devices[index].deviceID] { response.devices[index].lastDrill = drill }
        }
        return response
    }

    /// Says each crossing of `statuses` once, however many workers check at the same time: each is a
    /// conditional write of the device's freshness row (from not stale to stale, or back) whose winner
    /// appends the event in the same transaction. Rows are written in device-id order (no deadlock
    /// between two workers). Returns what this call said.
    static func applyCrossings(
        _ statuses: [Rampart_Backup_V1_DeviceBackupStatus], caller: String, on connection: PostgresConnection
    ) throws -> [BackupObjective.Said] {
        let stale = try staleDevices(on: connection)
        var said: [BackupObjective.Said] = []
        for status in statuses.sorted(by: { $0.deviceID < $1.deviceID }) {
            guard let crossing = BackupObjective.crossing(wasStale: stale.contains(status.deviceID), state: status.state) else {
                continue
            }
            let won: Int
            switch crossing {
            case .stale:
                won = try connection.query(
                    """
                    INSERT INTO backup.device_freshness (device_id, device_name, stale) VALUES (\(status.deviceID), \(status.deviceName), true)
                    ON CONFLICT (device_id) DO UPDATE SET stale = true, device_name = EXCLUDED.device_name, changed_at = now()
                    WHERE NOT backup.device_freshness.stale
                    RETURNING device_id
                    """
                ).count
            case .fresh:
                won = try connection.execute(
                    """
                    UPDATE backup.device_freshness SET stale = false, device_name = \(status.deviceName), changed_at = now()
                    WHERE device_id = \(status.deviceID) AND stale
                    """)
            }
            guard won == 1 else { continue }
            var attributes = [
                "device": status.deviceName, "device_id": status.deviceID, "last_backup_id": status.lastBackupID,
                "age_seconds": "\(status.ageSeconds)", "objective_seconds": "\(status.objectiveSeconds)", "caller": caller,
            ]
            attributes["reason"] =
                crossing == .fresh
                ? "back within its objective"
                : status.lastBackupID.isEmpty ? "never backed up since it was registered" : "last good backup older than its objective"
            try BackupStore.emit(crossing.topic, subject: status.deviceID, attributes, on: connection)
            said.append(BackupObjective.Said(device: status.deviceName, crossing: crossing))
        }
        return said
    }

    /// A good backup was just stored for `devices` (id → name): every one of them recorded as stale is
    /// fresh again, said once (`backup.device.fresh`) in the backup record's own transaction.
    static func markFresh(_ devices: [(id: String, name: String)], backupId: String, on connection: PostgresConnection) throws {
        guard !devices.isEmpty else { return }
        let rows = try connection.query(
            """
            UPDATE backup.device_freshness SET stale = false, changed_at = now()
            WHERE device_id = ANY(\(devices.map(\.id).sorted())) AND stale
            RETURNING device_id, device_name
            """)
        for row in rows {
            let id: String = try row.decode("device_id")
            let stored: String = try row.decode("device_name")
            let name = devices.first { $0.id == id }?.name ?? stored
            try BackupStore.emit(
                BackupObjective.Crossing.fresh.topic, subject: id,
                ["device": name, "device_id": id, "last_backup_id": backupId, "age_seconds": "0", "caller": "backup-stored",
                 "reason": "a good backup was stored"], on: connection)
        }
    }
}

/// Reads the fleet from inventory (one call) and judges every device against its objective (P16).
struct DeviceStatusReader: Sendable {
    let pool: PostgresPool
    let client: BusClient
    let defaultObjective: Int64

    /// Every registered device, from inventory (one call).
    func devices() async throws -> [Rampart_Inventory_V1_Device] {
        let response: Rampart_Inventory_V1_ListDevicesResponse = try await client.call(
            InventoryAPI.listDevices, Rampart_Inventory_V1_ListDevicesRequest(), timeout: .seconds(10), idempotent: true)
        return response.devices
    }

    /// Every registered device's status at `now`.
    func statuses(now: Date) async throws -> Rampart_Backup_V1_ListDeviceStatusResponse {
        let devices = try await self.devices()
        let defaultObjective = self.defaultObjective
        return try await pool.serve { connection in
            try ObjectiveStore.statuses(devices: devices, defaultObjective: defaultObjective, now: now, on: connection)
        }
    }
}

/// The periodic check of P16: every `interval`, every device against its objective; a device that crossed
/// it is said once (`backup.device.stale`), one back under it too (`backup.device.fresh`; a stored backup
/// says that at once, in its own transaction). Stores the default objective it was given at start.
public final class StalenessMonitor: Service, Sendable {
    private let reader: DeviceStatusReader
    private let interval: Duration
    private let logger: Logger
    private let now: @Sendable () -> Date

    /// A monitor checking every `interval` against `defaultObjective` seconds; `now` is the clock.
    public init(
        pool: PostgresPool, client: BusClient, defaultObjective: Int64, interval: Duration, logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.reader = DeviceStatusReader(pool: pool, client: client, defaultObjective: defaultObjective)
        self.interval = interval
        self.logger = logger
        self.now = now
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            var stored = false
            while !Task.isCancelled {
                do {
                    if !stored {
                        try await storeDefault()
                        stored = true
                    }
                    try await check()
                } catch is CancellationError {
                    return
                } catch {
                    logger.notice("backup objective check skipped", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Stores this worker's default objective for every worker and the CLI to read.
    func storeDefault() async throws {
        let seconds = reader.defaultObjective
        let before = try await reader.pool.serve { try ObjectiveStore.storeDefault(seconds, on: $0) }
        if let before, before != seconds {
            logger.notice(
                "the default backup objective changed", metadata: ["from_seconds": "\(before)", "to_seconds": "\(seconds)"])
        }
    }

    /// One check; returns the crossings this call said.
    @discardableResult
    public func check() async throws -> [BackupObjective.Said] {
        let devices = try await reader.devices()
        let (defaultObjective, now) = (reader.defaultObjective, now())
        let said = try await reader.pool.serve { connection in
            try ObjectiveStore.lockForCheck(on: connection)
            let statuses = try ObjectiveStore.statuses(devices: devices, defaultObjective: defaultObjective, now: now, on: connection)
            return try ObjectiveStore.applyCrossings(statuses.devices, caller: "objective-check", on: connection)
        }
        for item in said {
            let (device, crossing) = (item.device, item.crossing)
            logger.log(
                level: crossing == .stale ? .warning : .info,
                crossing == .stale ? "a device's last good backup is older than its objective" : "a device is back within its objective",
                metadata: ["device": "\(device)"])
        }
        return said
    }
}
