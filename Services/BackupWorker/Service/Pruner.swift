import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC
import ServiceLifecycle

/// Applies the retention policy to stored backups, owner by owner (a device, or a cluster for its
/// bundles): the records go first, in one transaction with their `backup.deleted` events; then the
/// storage objects no remaining record points at. One worker prunes at a time (advisory lock).
public struct Pruner: Sendable {
    let pool: PostgresPool
    let client: BusClient
    let policy: RetentionPolicy
    let logger: Logger
    let now: @Sendable () -> Date

    private static let lockKey: Int64 = 0x5241_4D50_5052  // "RAMPPR"

    /// A pruner deleting through `client` (storage) what `policy` does not keep.
    public init(
        pool: PostgresPool, client: BusClient, policy: RetentionPolicy, logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.pool = pool
        self.client = client
        self.policy = policy
        self.logger = logger
        self.now = now
    }

    /// Stores this pruner's policy as the installation's: replacing the stored one when `replace` (a worker
    /// started with --keep-* flags), else only when none is stored (the first worker of an installation).
    public func storePolicy(replace: Bool, setBy: String) async throws {
        let policy = self.policy
        try await pool.serve { try RetentionStore.store(policy, setBy: setBy, replace: replace, on: $0) }
        if replace { logger.notice("retention policy set from this worker's flags", metadata: ["set_by": "\(setBy)"]) }
    }

    /// The ids of the last good backup of every device `backups` hold (P16): a device's newest own file, or
    /// for a cluster node the newest bundle holding its file (newest by time, then by id, as
    /// `ObjectiveStore.lastGood` orders them). A backup whose latest drill of a device failed is not that
    /// device's good backup (P18): `failedDrills` holds "BACKUP/DEVICE" of each.
    static func lastGood(of backups: [Rampart_Backup_V1_Backup], failedDrills: Set<String> = []) -> Set<String> {
        Set(lastGoodDevices(of: backups, failedDrills: failedDrills).keys)
    }

    /// The same, with the names of the devices each is the last good backup of.
    static func lastGoodDevices(of backups: [Rampart_Backup_V1_Backup], failedDrills: Set<String> = []) -> [String: [String]] {
        var newest: [String: (backup: Rampart_Backup_V1_Backup, name: String)] = [:]
        for backup in backups {
            let devices = backup.members.isEmpty
                ? [(backup.ownerID, backup.ownerName)] : backup.members.map { ($0.deviceID, $0.deviceName) }
            for (device, name) in devices where !failedDrills.contains("\(backup.id)/\(device)") {
                if let current = newest[device]?.backup,
                    (current.createdUnixMs, current.id) >= (backup.createdUnixMs, backup.id)
                {
                    continue
                }
                newest[device] = (backup, name)
            }
        }
        return newest.values.reduce(into: [:]) { $0[$1.backup.id, default: []].append($1.name) }
            .mapValues { $0.sorted() }
    }

    static func reason(_ entry: (backup: Rampart_Backup_V1_Backup, reasons: [String])) -> Rampart_Backup_V1_RetentionReason {
        var reason = Rampart_Backup_V1_RetentionReason()
        reason.backupID = entry.backup.id
        reason.fileName = entry.backup.fileName
        reason.ownerName = entry.backup.ownerName
        reason.reasons = entry.reasons
        return reason
    }

    /// Prunes `owner`'s backups (nil: everyone's) by the policy in force (`RetentionStore`; this pruner's
    /// own when none is stored); with `dryRun`, only reports. Each deleted backup comes with why (every
    /// rule's reason for not keeping it); with `dryRun` and an owner, each kept one too.
    public func prune(owner: String?, dryRun: Bool, caller: String) async throws -> Rampart_Backup_V1_PruneBackupsResponse {
        let (fallback, now) = (self.policy, self.now())
        let (response, orphans) = try await pool.serve { connection -> (Rampart_Backup_V1_PruneBackupsResponse, [String]) in
            var response = Rampart_Backup_V1_PruneBackupsResponse()
            let locked = try connection.query("SELECT pg_try_advisory_xact_lock(\(Self.lockKey)) AS locked")
            guard try locked.first?.decode("locked", as: Bool.self) == true else {
                throw RPCError(.aborted, "another worker is pruning right now; try again shortly")
            }
            let policy = try RetentionStore.current(on: connection)?.policy ?? fallback
            response.policy = RetentionStore.message(policy)
            // The owner's own backups only: the cluster bundles that merely hold a node's file belong to the
            // cluster, whose retention is decided over all its bundles.
            let backups = try BackupStore.listBackups(owner: owner, jobId: nil, limit: 1_000_000, on: connection)
                .filter { owner == nil || $0.ownerID == owner || $0.ownerName == owner }
            var deleted: [(backup: Rampart_Backup_V1_Backup, reasons: [String])] = []
            var kept: [(backup: Rampart_Backup_V1_Backup, reasons: [String])] = []
            // P16: the last good backup of every device these backups hold is never deleted — for a cluster
            // node left out of the newest bundles (B10), that is an older bundle the policy alone would drop.
            let lastGood = Self.lastGoodDevices(of: backups, failedDrills: try DrillStore.failedKeys(on: connection))
            for (_, group) in Dictionary(grouping: backups, by: \.ownerID) {
                let byId = Dictionary(uniqueKeysWithValues: group.map { ($0.id, $0) })
                let candidates = group.map {
                    RetentionCandidate(id: $0.id, created: Date(timeIntervalSince1970: Double($0.createdUnixMs) / 1000), good: true)
                }
                for decision in policy.decide(candidates, now: now, in: TimeZone(identifier: "UTC")!) {
                    guard let backup = byId[decision.id] else { continue }
                    if decision.keep {
                        kept.append((backup, decision.reasons))
                    } else if let devices = lastGood[backup.id] {
                        kept.append((backup, devices.map { "the last good backup of \($0) (P16)" }))
                    } else {
                        deleted.append((backup, decision.reasons))
                    }
                }
            }
            deleted.sort { $0.backup.createdUnixMs < $1.backup.createdUnixMs }
            response.deleted = deleted.map(\.backup)
            response.reasons = deleted.map(Self.reason)
            if dryRun, owner != nil {
                response.keptBackups = kept.sorted { $0.backup.createdUnixMs > $1.backup.createdUnixMs }.map(Self.reason)
            }
            response.kept = UInt32(backups.count - deleted.count)
            guard !dryRun, !deleted.isEmpty else { return (response, []) }
            for (backup, _) in deleted {
                try connection.execute("DELETE FROM backup.backups WHERE id = \(backup.id)::uuid")
                try BackupStore.emit(
                    "backup.deleted", subject: backup.id,
                    ["owner": backup.ownerName, "file": backup.fileName, "reason": "retention", "caller": caller],
                    on: connection)
            }
            let objects = Array(Set(deleted.map(\.backup.objectID)))
            let stillUsed = try connection.query(
                "SELECT DISTINCT object_id FROM backup.backups WHERE object_id = ANY(\(objects))"
            ).map { try $0.decode("object_id", as: String.self) }
            return (response, objects.filter { !stillUsed.contains($0) })
        }
        for object in orphans {
            var request = Rampart_Storage_V1_DeleteObjectRequest()
            request.objectID = object
            do {
                let _: Rampart_Storage_V1_DeleteObjectResponse = try await client.call(
                    StorageAPI.deleteObject, request, timeout: .seconds(30),
                    idempotent: true)
            } catch {
                // The record is gone; the object is unreachable and Verify lists it. Never fatal.
                logger.warning("could not delete a pruned object", metadata: ["object": "\(object)", "error": "\(error)"])
            }
        }
        if !dryRun && !response.deleted.isEmpty {
            logger.info("pruned backups", metadata: ["deleted": "\(response.deleted.count)", "kept": "\(response.kept)"])
        }
        return response
    }
}

/// Runs the pruner every `interval`.
public final class PruneLoop: Service, Sendable {
    private let pruner: Pruner
    private let interval: Duration

    /// A loop pruning every `interval`.
    public init(pruner: Pruner, interval: Duration) {
        self.pruner = pruner
        self.interval = interval
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                do {
                    _ = try await pruner.prune(owner: nil, dryRun: false, caller: "retention")
                } catch {
                    pruner.logger.notice("retention sweep skipped", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
