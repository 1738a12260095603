import Foundation
import RampartAPI
import RampartBus
import RampartInventory
import RampartProto
import RampartRPC
import SwiftProtobuf

/// Turns requested targets into tasks, asking inventory what they are: one task per standalone
/// device, HA pair (B7) or cluster (B8); refusals with their reason (B2, B7, B8, B9).
struct Planner: Sendable {
    let client: BusClient
    /// Plans restore drills (P18) instead of backups: a single HA peer or cluster node is drilled on its own
    /// (its latest good backup is its own file, or its file in its cluster's bundle).
    var drill = false

    private func call<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws -> Response {
        try await client.call(method, request, timeout: .seconds(10), idempotent: true)
    }

    /// Checks that every target names something registered, before anything is recorded: an unknown
    /// name is `NOT_FOUND` (a typo never becomes a job or a schedule), naming each one. Returns the plan.
    func resolve(_ targets: [Rampart_Backup_V1_Target]) async throws -> [PlannedTask] {
        let tasks = try await plan(targets)
        let unknown = tasks.filter(\.isUnknown).compactMap(\.refusal)
        if !unknown.isEmpty {
            throw RPCError.notFound(unknown.joined(separator: "; ") + " (rampart devices list, ha-pairs list, clusters list)")
        }
        return tasks
    }

    /// The names among `targets` that name nothing registered now (a typo, or unregistered since).
    /// `all` always names what there is: it is not looked up (that would list the whole fleet).
    func missing(_ targets: [Rampart_Backup_V1_Target]) async throws -> [String] {
        let named = targets.filter { $0.kind != .allDevices }
        guard !named.isEmpty else { return [] }
        return try await plan(named).filter(\.isUnknown).map(\.targetName)
    }

    /// The tasks for `targets` (duplicates removed, order kept).
    func plan(_ targets: [Rampart_Backup_V1_Target]) async throws -> [PlannedTask] {
        guard !targets.isEmpty else { throw RPCError.invalidArgument("name at least one target (a device, HA pair, cluster or all)") }
        guard targets.count <= 10_000 else { throw RPCError.invalidArgument("at most 10,000 targets in one request") }
        var tasks: [PlannedTask] = []
        for target in targets {
            tasks += try await plan(target)
        }
        var seen = Set<String>()
        return tasks.filter { task in
            task.targetId.isEmpty || seen.insert("\(task.kind.label)/\(task.targetId)").inserted
        }.map { task in
            var task = task
            task.drill = drill
            return task
        }
    }

    private func plan(_ target: Rampart_Backup_V1_Target) async throws -> [PlannedTask] {
        switch target.kind {
        case .allDevices:
            return try await planAll()
        case .device, .haPair, .cluster:
            let attempt = target.kind == .device ? planDevice : target.kind == .haPair ? planPair : planCluster
            do {
                return [try await attempt(target.ref)]
            } catch let error as RPCError where error.code == .notFound {
                // Unregistered since the schedule was made, or a typo: a refused task, never a failed plan.
                let what = target.kind == .haPair ? "HA pair" : target.kind.label
                return [PlannedTask(kind: .unspecified, targetId: "", targetName: target.ref,
                                    refusal: "no \(what) named '\(target.ref)' is registered")]
            }
        case .unspecified, .UNRECOGNIZED:
            // A bare name: a device, else an HA pair, else a cluster of that name.
            for attempt in [planDevice, planPair, planCluster] {
                do {
                    return [try await attempt(target.ref)]
                } catch let error as RPCError where error.code == .notFound {
                    continue
                }
            }
            return [PlannedTask(kind: .unspecified, targetId: "", targetName: target.ref,
                                refusal: "no device, HA pair or cluster named '\(target.ref)' is registered")]
        }
    }

    private func supportRefusal(_ devices: [Rampart_Inventory_V1_Device]) -> String? {
        for device in devices {
            let (supported, reason) = BackupSupportMatrix.evaluate(device)
            if !supported { return "\(device.name): \(reason)" }
        }
        return nil
    }

    private func planDevice(_ reference: String) async throws -> PlannedTask {
        var request = Rampart_Inventory_V1_GetDeviceRequest()
        request.device = reference
        let response: Rampart_Inventory_V1_DeviceResponse = try await call(InventoryAPI.getDevice, request)
        let d = response.device
        var task = PlannedTask(kind: .device, targetId: d.id, targetName: d.name)
        if drill {
            task.refusal = supportRefusal([d])
            return task
        }
        switch d.role {
        case .haPrimary, .haSecondary:
            let pair = try await pairName(d.haPairID)
            task.refusal = "\(d.name) is a peer of HA pair \(pair): an HA pair is backed up as a unit (rule B7); back up \(pair)"
        case .clusterControl, .clusterData:
            let cluster = try await clusterName(d.clusterID)
            task.refusal = "\(d.name) is a node of cluster \(cluster): a single cluster node cannot be backed up (rule B8); back up \(cluster)"
        default:
            task.refusal = supportRefusal([d])
        }
        return task
    }

    private func pairName(_ id: String) async throws -> String {
        var request = Rampart_Inventory_V1_GetHaPairRequest()
        request.pair = id
        let response: Rampart_Inventory_V1_HaPairResponse = try await call(InventoryAPI.getHaPair, request)
        return response.pair.name
    }

    private func clusterName(_ id: String) async throws -> String {
        var request = Rampart_Inventory_V1_GetClusterRequest()
        request.cluster = id
        let response: Rampart_Inventory_V1_ClusterResponse = try await call(InventoryAPI.getCluster, request)
        return response.cluster.name
    }

    private func planPair(_ reference: String) async throws -> PlannedTask {
        var request = Rampart_Inventory_V1_GetHaPairRequest()
        request.pair = reference
        let response: Rampart_Inventory_V1_HaPairResponse = try await call(InventoryAPI.getHaPair, request)
        var task = PlannedTask(kind: .haPair, targetId: response.pair.id, targetName: response.pair.name)
        task.refusal = supportRefusal(response.devices)
        return task
    }

    private func planCluster(_ reference: String) async throws -> PlannedTask {
        var request = Rampart_Inventory_V1_GetClusterRequest()
        request.cluster = reference
        let response: Rampart_Inventory_V1_ClusterResponse = try await call(InventoryAPI.getCluster, request)
        var task = PlannedTask(kind: .cluster, targetId: response.cluster.id, targetName: response.cluster.name)
        if case .failure(let refusal) = Self.clusterNodes(response) {
            task.refusal = refusal.message
        } else {
            task.refusal = supportRefusal(response.devices)
        }
        return task
    }

    private func planAll() async throws -> [PlannedTask] {
        let devices: Rampart_Inventory_V1_ListDevicesResponse = try await call(
            InventoryAPI.listDevices, Rampart_Inventory_V1_ListDevicesRequest())
        let pairs: Rampart_Inventory_V1_ListHaPairsResponse = try await call(
            InventoryAPI.listHaPairs, Rampart_Inventory_V1_ListHaPairsRequest())
        let clusters: Rampart_Inventory_V1_ListClustersResponse = try await call(
            InventoryAPI.listClusters, Rampart_Inventory_V1_ListClustersRequest())
        let byId = Dictionary(uniqueKeysWithValues: devices.devices.map { ($0.id, $0) })
        var tasks: [PlannedTask] = []
        for device in devices.devices where device.role == .standalone {
            tasks.append(PlannedTask(kind: .device, targetId: device.id, targetName: device.name, refusal: supportRefusal([device])))
        }
        for pair in pairs.pairs {
            let members = [pair.primaryID, pair.secondaryID].compactMap { byId[$0] }
            tasks.append(PlannedTask(kind: .haPair, targetId: pair.id, targetName: pair.name, refusal: supportRefusal(members)))
        }
        for cluster in clusters.clusters {
            let members = cluster.nodes.compactMap { byId[$0.deviceID] }
            tasks.append(PlannedTask(kind: .cluster, targetId: cluster.id, targetName: cluster.name, refusal: supportRefusal(members)))
        }
        return tasks
    }
}

extension Planner {
    /// B9, decided once for planning and for the run: a cluster is backed up only when every node it
    /// lists is registered and one of them is its control node. Its nodes, control node first, or the
    /// refusal (FAILED_PRECONDITION).
    static func clusterNodes(_ response: Rampart_Inventory_V1_ClusterResponse)
        -> Result<(control: Rampart_Inventory_V1_Device, data: [Rampart_Inventory_V1_Device]), RPCError>
    {
        let nodes = response.cluster.nodes.compactMap { node in response.devices.first { $0.id == node.deviceID } }
        guard nodes.count == response.cluster.nodes.count, let control = nodes.first(where: { $0.role == .clusterControl })
        else {
            return .failure(
                RPCError.failedPrecondition(
                    "cluster \(response.cluster.name) has nodes that are not registered: a cluster backup needs every node registered (rule B9)"))
        }
        return .success((control, nodes.filter { $0.role == .clusterData }))
    }
}

typealias SwiftProtobufMessage = SwiftProtobuf.Message
