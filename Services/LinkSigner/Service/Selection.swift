import Foundation
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC
import SwiftProtobuf

/// Turns an export selector into the backups it names, asking the backup and inventory services.
struct Selection: Sendable {
    /// Most backups one export may hold.
    static let maxBackups = 10_000

    let client: BusClient
    let timeout: Duration

    /// The backups `selector` names, newest first within each owner; throws `INVALID_ARGUMENT` for
    /// a selector that names nothing or more than one kind of thing, `NOT_FOUND` when it finds no
    /// backup.
    func backups(_ selector: Rampart_Links_V1_ExportSelector) async throws -> (description: String, backups: [Rampart_Backup_V1_Backup]) {
        let chosen = [
            !selector.backupIds.isEmpty, !selector.device.isEmpty, !selector.haPair.isEmpty, !selector.cluster.isEmpty,
            !selector.jobID.isEmpty,
        ].filter { $0 }.count
        guard chosen == 1 else {
            throw RPCError.invalidArgument(
                "name exactly one of: backup ids, a device, an HA pair, a cluster or a job (got \(chosen))")
        }
        let which = selector.all ? "all" : "latest"
        if !selector.backupIds.isEmpty {
            guard selector.backupIds.count <= Self.maxBackups else {
                throw RPCError.invalidArgument("at most \(Self.maxBackups) backups per export")
            }
            var seen = Set<String>()
            var backups: [Rampart_Backup_V1_Backup] = []
            for id in selector.backupIds where seen.insert(id).inserted {
                backups.append(try await backup(id))
            }
            return ("backups \(selector.backupIds.count)", backups)
        }
        if !selector.device.isEmpty {
            let found = try await list(owner: selector.device, jobId: "", latest: !selector.all).filter { !isBundle($0) }
            guard !found.isEmpty else {
                throw try await noBackups(
                    "device", selector.device, lookup: InventoryAPI.getDevice,
                    Rampart_Inventory_V1_GetDeviceRequest.with { $0.device = selector.device })
            }
            return ("device \(selector.device) \(which)", found)
        }
        if !selector.haPair.isEmpty {
            var request = Rampart_Inventory_V1_GetHaPairRequest()
            request.pair = selector.haPair
            let pair = try await client.call(
                InventoryAPI.getHaPair, request, timeout: timeout, idempotent: true
            ).pair
            var found: [Rampart_Backup_V1_Backup] = []
            for device in [pair.primaryID, pair.secondaryID] {
                found += try await list(owner: device, jobId: "", latest: !selector.all).filter { !isBundle($0) }
            }
            guard !found.isEmpty else { throw RPCError.notFound("HA pair \(selector.haPair) has no backups") }
            return ("ha-pair \(selector.haPair) \(which)", found)
        }
        if !selector.cluster.isEmpty {
            // Latest per node: the newest bundle that holds each node's file (after a node failed, the newest
            // bundle is partial, and the node's file is in an older one).
            let bundles = try await list(owner: selector.cluster, jobId: "", latest: false).filter(isBundle)
            var covered = Set<String>()
            let found = selector.all
                ? bundles
                : bundles.filter { bundle in
                    let nodes = Set(bundle.members.map(\.deviceID))
                    defer { covered.formUnion(nodes) }
                    return !nodes.isSubset(of: covered)
                }
            guard !found.isEmpty else {
                throw try await noBackups(
                    "cluster", selector.cluster, lookup: InventoryAPI.getCluster,
                    Rampart_Inventory_V1_GetClusterRequest.with { $0.cluster = selector.cluster })
            }
            return ("cluster \(selector.cluster) \(which)", found)
        }
        guard UUID(uuidString: selector.jobID) != nil else {
            throw RPCError.invalidArgument("job id \(selector.jobID) is not a UUID")
        }
        let found = try await list(owner: "", jobId: selector.jobID, latest: false)
        guard !found.isEmpty else { throw RPCError.notFound("job \(selector.jobID) stored no backups") }
        return ("job \(selector.jobID)", found)
    }

    /// One backup by id.
    func backup(_ id: String) async throws -> Rampart_Backup_V1_Backup {
        guard UUID(uuidString: id) != nil else { throw RPCError.invalidArgument("backup id \(id) is not a UUID") }
        var request = Rampart_Backup_V1_GetBackupRequest()
        request.backupID = id.lowercased()
        return try await client.call(
            BackupAPI.getBackup, request, timeout: timeout, idempotent: true
        ).backup
    }

    /// "WHAT NAME has no backups" — unless inventory does not know NAME at all: a typo is not an owner
    /// without backups, and inventory's NOT_FOUND ("not registered") is thrown instead.
    private func noBackups<Request, Response>(
        _ what: String, _ name: String, lookup method: RPCMethod<Request, Response>, _ request: Request
    ) async throws -> RPCError {
        _ = try await client.call(method, request, timeout: timeout, idempotent: true)
        return RPCError.notFound("\(what) \(name) has no backups")
    }

    /// A cluster bundle (`.tar.gz` of every node) rather than one device's file.
    func isBundle(_ backup: Rampart_Backup_V1_Backup) -> Bool {
        !backup.members.isEmpty || (backup.role == .unspecified && !backup.clusterID.isEmpty)
    }

    private func list(owner: String, jobId: String, latest: Bool) async throws -> [Rampart_Backup_V1_Backup] {
        var request = Rampart_Backup_V1_ListBackupsRequest()
        request.owner = owner
        request.jobID = jobId
        request.limit = UInt32(Self.maxBackups)
        let backups = try await client.call(
            BackupAPI.listBackups, request, timeout: timeout, idempotent: true
        ).backups
        // Newest first; "latest" keeps the newest file of each owner.
        guard latest else { return backups }
        var seen = Set<String>()
        return backups.filter { seen.insert($0.ownerID).inserted }
    }
}
