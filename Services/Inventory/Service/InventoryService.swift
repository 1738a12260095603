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
import SwiftProtobuf

/// The `inventory` service: devices, HA pairs, clusters, presence, out-of-date flags and the backup
/// support matrix (B2). Every change is written with its event in one transaction (P2).
public struct InventoryService: Sendable {
    private let pool: PostgresPool

    /// The service over `pool`.
    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Migrates the schemas the inventory writes to (`events`, `inventory`).
    public static func migrate(connection: PostgresConnection, logger: Logger) throws {
        try EventOutbox.migrate(connection: connection, logger: logger)
        try Migrator.migrate(schema: "inventory", migrations: InventoryMigrations.all, connection: connection, logger: logger)
    }

    private static func emit(
        _ topic: String, subject: String, attributes: [String: String], message: any SwiftProtobuf.Message,
        context: RequestContext, on connection: PostgresConnection
    ) throws {
        var attributes = attributes
        attributes["caller"] = context.caller
        try EventOutbox.append(
            OutboxEvent(topic: topic, subject: subject, attributes: attributes, message: message),
            source: InventoryAPI.serviceName, on: connection)
    }

    private static func emit(_ topic: String, _ device: Rampart_Inventory_V1_Device, _ context: RequestContext,
                             extra: [String: String] = [:], on connection: PostgresConnection) throws {
        var attributes = ["device_name": device.name, "role": device.role.label]
        attributes.merge(extra) { $1 }
        try emit(topic, subject: device.id, attributes: attributes, message: device, context: context, on: connection)
    }

    /// Locks the devices (in id order, so concurrent requests never deadlock) and reads them afresh.
    private static func lockDevices(_ references: [String], on connection: PostgresConnection) throws
        -> [Rampart_Inventory_V1_Device]
    {
        let ids = try references.map { try InventoryStore.device($0, on: connection).id }
        for id in Set(ids).sorted() {
            _ = try InventoryStore.device(id, lock: true, on: connection)
        }
        return try ids.map { try InventoryStore.device($0, on: connection) }
    }

    /// The handlers, ready for a `ServiceHost`.
    public func router() -> ServiceRouter {
        var router = ServiceRouter(for: InventoryAPI.self)
        registerDevices(&router)
        registerPairs(&router)
        registerClusters(&router)
        return router
    }

    // MARK: devices

    private func registerDevices(_ router: inout ServiceRouter) {
        router.register(InventoryAPI.getManager) { (_: Rampart_Inventory_V1_GetManagerRequest, _) in
            try await pool.serve { connection in
                let manager = try InventoryStore.manager(on: connection)
                var response = Rampart_Inventory_V1_ManagerResponse()
                response.managerID = manager.id
                response.createdUnixMs = manager.createdAt.unixMillis
                return response
            }
        }
        router.register(InventoryAPI.registerDevice) { (request: Rampart_Inventory_V1_RegisterDeviceRequest, context) in
            var device = request.device
            try context.requireOwnDevice(device.name)
            // Registered without a manager id: this installation's (R6).
            if device.managerID.isEmpty { device.managerID = try await pool.serve { try InventoryStore.manager(on: $0).id } }
            try InventoryRules.validateDevice(device)
            context.audit.note("name", device.name)
            let candidate = device
            return try await pool.serve { connection in
                let id = try InventoryStore.insertDevice(candidate, on: connection)
                context.audit.subject = id
                var response = Rampart_Inventory_V1_DeviceResponse()
                response.device = try InventoryStore.device(id, on: connection)
                try Self.emit("inventory.device.registered", response.device, context, on: connection)
                return response
            }
        }
        router.register(InventoryAPI.getDevice) { (request: Rampart_Inventory_V1_GetDeviceRequest, context) in
            try await pool.serve { connection in
                var response = Rampart_Inventory_V1_DeviceResponse()
                response.device = try InventoryStore.device(request.device, on: connection)
                try context.requireOwnDevice(response.device.name)
                return response
            }
        }
        router.register(InventoryAPI.listDevices) { (request: Rampart_Inventory_V1_ListDevicesRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Inventory_V1_ListDevicesResponse()
                response.devices = try InventoryStore.listDevices(request, on: connection)
                return response
            }
        }
        router.register(InventoryAPI.updateDevice) { (request: Rampart_Inventory_V1_UpdateDeviceRequest, context) in
            context.audit.subject = request.device
            guard !request.fields.isEmpty else { throw RPCError.invalidArgument("no field to update was named") }
            return try await pool.serve { connection in
                let current = try Self.lockDevices([request.device], on: connection)[0]
                let updated = try DeviceUpdate.apply(fields: request.fields, from: request.values, to: current)
                try InventoryRules.validateDevice(updated)
                try Self.checkDeploymentStillConsistent(updated, on: connection)
                try InventoryStore.updateDevice(updated, on: connection)
                var response = Rampart_Inventory_V1_DeviceResponse()
                response.device = try InventoryStore.device(updated.id, on: connection)
                try Self.emit(
                    "inventory.device.updated", response.device, context,
                    extra: ["fields": request.fields.joined(separator: ",")], on: connection)
                return response
            }
        }
        router.register(InventoryAPI.unregisterDevice) { (request: Rampart_Inventory_V1_UnregisterDeviceRequest, context) in
            context.audit.subject = request.device
            return try await pool.serve { connection in
                let device = try Self.lockDevices([request.device], on: connection)[0]
                if !device.haPairID.isEmpty || !device.clusterID.isEmpty {
                    throw RPCError.failedPrecondition(
                        "device \(device.name) is in \(device.haPairID.isEmpty ? "a cluster" : "an HA pair"); "
                            + "remove it from there first (and never unregister a device to restore it: rule R14)")
                }
                try InventoryStore.deleteDevice(id: device.id, on: connection)
                try Self.emit("inventory.device.unregistered", device, context, on: connection)
                var response = Rampart_Inventory_V1_UnregisterDeviceResponse()
                response.deviceID = device.id
                return response
            }
        }
        router.register(InventoryAPI.reportPresence) { (request: Rampart_Inventory_V1_ReportPresenceRequest, context) in
            try await pool.serve { connection in
                guard let sequence = Int64(exactly: request.sequence) else {
                    throw RPCError.invalidArgument("sequence \(request.sequence) is above the largest allowed (\(Int64.max))")
                }
                let device = try InventoryStore.device(request.device, on: connection)
                try context.requireOwnDevice(device.name)
                let update = try InventoryStore.setPresence(
                    id: device.id, connected: request.connected, sequence: sequence, reporter: request.reporter,
                    on: connection)
                if update == .stale {
                    context.logger.notice(
                        "late presence report ignored: a newer one was applied",
                        metadata: ["device": "\(device.name)", "connected": "\(request.connected)", "sequence": "\(sequence)"])
                }
                var response = Rampart_Inventory_V1_DeviceResponse()
                response.device = try InventoryStore.device(device.id, on: connection)
                if update == .changed {
                    let topic = request.connected ? "inventory.device.connected" : "inventory.device.disconnected"
                    try Self.emit(topic, response.device, context, on: connection)
                }
                return response
            }
        }
        router.register(InventoryAPI.reportIdentityConflict) { (request: Rampart_Inventory_V1_ReportIdentityConflictRequest, context) in
            try await pool.serve { connection in
                let device = try InventoryStore.device(request.device, on: connection)
                let news = try InventoryStore.recordIdentityConflict(
                    id: device.id, serial: request.serial, keyName: request.keyName, reason: request.reason, on: connection)
                var response = Rampart_Inventory_V1_DeviceResponse()
                response.device = try InventoryStore.device(device.id, on: connection)
                if news {
                    context.logger.warning(
                        "identity conflict: an appliance claiming this device was refused by the bus",
                        metadata: [
                            "device": "\(device.name)", "serial": "\(request.serial)", "key": "\(request.keyName)",
                            "reason": "\(request.reason)",
                        ])
                    try Self.emit(
                        "inventory.device.identity-conflict", response.device, context,
                        extra: ["serial": request.serial, "key": request.keyName, "reason": request.reason], on: connection)
                }
                return response
            }
        }
        router.register(InventoryAPI.setOutOfDate) { (request: Rampart_Inventory_V1_SetOutOfDateRequest, context) in
            context.audit.subject = request.device
            return try await pool.serve { connection in
                let device = try InventoryStore.device(request.device, on: connection)
                let changed = try InventoryStore.setOutOfDate(id: device.id, outOfDate: request.outOfDate, on: connection)
                var response = Rampart_Inventory_V1_DeviceResponse()
                response.device = try InventoryStore.device(device.id, on: connection)
                if changed {
                    let topic = request.outOfDate ? "inventory.device.out_of_date" : "inventory.device.up_to_date"
                    try Self.emit(topic, response.device, context, on: connection)
                }
                return response
            }
        }
        router.register(InventoryAPI.backupSupport) { (request: Rampart_Inventory_V1_BackupSupportRequest, _) in
            try await pool.serve { connection in
                let devices =
                    request.devices.isEmpty
                    ? try InventoryStore.listDevices(.init(), on: connection)
                    : try request.devices.map { try InventoryStore.device($0, on: connection) }
                var response = Rampart_Inventory_V1_BackupSupportResponse()
                response.results = devices.map { device in
                    let (supported, reason) = BackupSupportMatrix.evaluate(device)
                    var result = Rampart_Inventory_V1_BackupSupport()
                    result.deviceID = device.id
                    result.deviceName = device.name
                    result.supported = supported
                    result.reason = reason
                    return result
                }
                return response
            }
        }
    }

    /// Refuses an update that would leave an HA pair or cluster with members of different kinds.
    private static func checkDeploymentStillConsistent(_ device: Rampart_Inventory_V1_Device, on connection: PostgresConnection)
        throws
    {
        var peers: [String] = []
        if !device.haPairID.isEmpty {
            let pair = try InventoryStore.pair(device.haPairID, on: connection)
            peers = [pair.primaryID, pair.secondaryID]
        } else if !device.clusterID.isEmpty {
            peers = try InventoryStore.cluster(device.clusterID, on: connection).nodes.map(\.deviceID)
        }
        let what = device.haPairID.isEmpty ? "cluster" : "HA pair"
        for peer in try InventoryStore.devices(ids: peers.filter { $0 != device.id }, on: connection) {
            try InventoryRules.requireSameKind(device, peer, in: what)
        }
    }

    // MARK: HA pairs

    private func registerPairs(_ router: inout ServiceRouter) {
        router.register(InventoryAPI.createHaPair) { (request: Rampart_Inventory_V1_CreateHaPairRequest, context) in
            context.audit.subject = request.name
            try InventoryRules.validateName(request.name, what: "HA pair")
            guard !request.primary.isEmpty, !request.secondary.isEmpty else {
                throw RPCError.invalidArgument("an HA pair needs a primary and a secondary device")
            }
            return try await pool.serve { connection in
                let devices = try Self.lockDevices([request.primary, request.secondary], on: connection)
                try InventoryRules.validateMembers(devices, forming: "HA pair")
                let id = try InventoryStore.insertPair(
                    name: request.name, primary: devices[0].id, secondary: devices[1].id, on: connection)
                let response = try Self.pairResponse(id, on: connection)
                try Self.emit(
                    "inventory.ha_pair.created", subject: id,
                    attributes: ["pair_name": request.name, "primary": devices[0].name, "secondary": devices[1].name],
                    message: response.pair, context: context, on: connection)
                return response
            }
        }
        router.register(InventoryAPI.getHaPair) { (request: Rampart_Inventory_V1_GetHaPairRequest, _) in
            try await pool.serve { connection in try Self.pairResponse(request.pair, on: connection) }
        }
        router.register(InventoryAPI.listHaPairs) { (_: Rampart_Inventory_V1_ListHaPairsRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Inventory_V1_ListHaPairsResponse()
                response.pairs = try InventoryStore.listPairs(on: connection)
                return response
            }
        }
        router.register(InventoryAPI.updateHaPair) { (request: Rampart_Inventory_V1_UpdateHaPairRequest, context) in
            context.audit.subject = request.pair
            if !request.name.isEmpty { try InventoryRules.validateName(request.name, what: "HA pair") }
            return try await pool.serve { connection in
                var pair = try InventoryStore.pair(request.pair, on: connection)
                var changes: [String] = []
                if !request.name.isEmpty && request.name != pair.name {
                    pair.name = request.name
                    changes.append("name")
                }
                if request.syncState != .unspecified && request.syncState != pair.syncState {
                    pair.syncState = request.syncState
                    changes.append("sync_state")
                }
                if request.swapRoles {
                    (pair.primaryID, pair.secondaryID) = (pair.secondaryID, pair.primaryID)
                    changes.append("roles")
                }
                guard !changes.isEmpty else { throw RPCError.invalidArgument("nothing to change in HA pair \(pair.name)") }
                try InventoryStore.updatePair(pair, on: connection)
                let response = try Self.pairResponse(pair.id, on: connection)
                try Self.emit(
                    "inventory.ha_pair.updated", subject: pair.id,
                    attributes: ["pair_name": pair.name, "changes": changes.joined(separator: ","),
                                 "sync_state": pair.syncState.label],
                    message: response.pair, context: context, on: connection)
                return response
            }
        }
        router.register(InventoryAPI.deleteHaPair) { (request: Rampart_Inventory_V1_DeleteHaPairRequest, context) in
            context.audit.subject = request.pair
            return try await pool.serve { connection in
                let pair = try InventoryStore.pair(request.pair, on: connection)
                try InventoryStore.deletePair(id: pair.id, on: connection)
                try Self.emit(
                    "inventory.ha_pair.deleted", subject: pair.id, attributes: ["pair_name": pair.name], message: pair,
                    context: context, on: connection)
                var response = Rampart_Inventory_V1_DeleteHaPairResponse()
                response.pairID = pair.id
                return response
            }
        }
    }

    private static func pairResponse(_ reference: String, on connection: PostgresConnection) throws
        -> Rampart_Inventory_V1_HaPairResponse
    {
        var response = Rampart_Inventory_V1_HaPairResponse()
        response.pair = try InventoryStore.pair(reference, on: connection)
        response.devices = try InventoryStore.devices(ids: [response.pair.primaryID, response.pair.secondaryID], on: connection)
        return response
    }

    // MARK: clusters

    private func registerClusters(_ router: inout ServiceRouter) {
        router.register(InventoryAPI.createCluster) { (request: Rampart_Inventory_V1_CreateClusterRequest, context) in
            context.audit.subject = request.name
            try InventoryRules.validateName(request.name, what: "cluster")
            try InventoryRules.validateClusterShape(control: request.control, data: request.data)
            return try await pool.serve { connection in
                let devices = try Self.lockDevices([request.control] + request.data, on: connection)
                try InventoryRules.validateMembers(devices, forming: "cluster")
                let id = try InventoryStore.insertCluster(name: request.name, on: connection)
                try InventoryStore.setClusterNodes(id: id, nodes: Self.nodes(devices), on: connection)
                let response = try Self.clusterResponse(id, on: connection)
                try Self.emit(
                    "inventory.cluster.created", subject: id,
                    attributes: ["cluster_name": request.name, "control": devices[0].name, "nodes": "\(devices.count)"],
                    message: response.cluster, context: context, on: connection)
                return response
            }
        }
        router.register(InventoryAPI.getCluster) { (request: Rampart_Inventory_V1_GetClusterRequest, _) in
            try await pool.serve { connection in try Self.clusterResponse(request.cluster, on: connection) }
        }
        router.register(InventoryAPI.listClusters) { (_: Rampart_Inventory_V1_ListClustersRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Inventory_V1_ListClustersResponse()
                response.clusters = try InventoryStore.listClusters(on: connection)
                return response
            }
        }
        router.register(InventoryAPI.updateCluster) { (request: Rampart_Inventory_V1_UpdateClusterRequest, context) in
            context.audit.subject = request.cluster
            if !request.name.isEmpty { try InventoryRules.validateName(request.name, what: "cluster") }
            return try await pool.serve { connection in
                let cluster = try InventoryStore.cluster(request.cluster, on: connection)
                let members = try Self.lockDevices(cluster.nodes.map(\.deviceID), on: connection)
                let removed = Set(try request.removeData.map { try InventoryStore.device($0, on: connection).id })
                let added = try Self.lockDevices(request.addData, on: connection)
                for id in removed where !members.contains(where: { $0.id == id }) {
                    throw RPCError.failedPrecondition("device \(id) is not a node of cluster \(cluster.name)")
                }
                try InventoryRules.validateMembers(added, forming: "cluster")
                var control = members[0]
                if !request.control.isEmpty {
                    let wanted = try InventoryStore.device(request.control, on: connection)
                    guard let member = members.first(where: { $0.id == wanted.id }) else {
                        throw RPCError.failedPrecondition("\(wanted.name) is not a node of cluster \(cluster.name)")
                    }
                    control = member
                }
                if removed.contains(control.id) {
                    throw RPCError.failedPrecondition("the control node \(control.name) cannot be removed; make another node the control node first")
                }
                let data = (members + added).filter { $0.id != control.id && !removed.contains($0.id) }
                try InventoryRules.validateClusterShape(control: control.id, data: data.map(\.id))
                for device in added { try InventoryRules.requireSameKind(control, device, in: "cluster") }
                var changes: [String] = []
                if !request.name.isEmpty && request.name != cluster.name {
                    try InventoryStore.renameCluster(id: cluster.id, name: request.name, on: connection)
                    changes.append("name")
                }
                let nodes = Self.nodes([control] + data)
                if nodes != cluster.nodes {
                    try InventoryStore.setClusterNodes(id: cluster.id, nodes: nodes, on: connection)
                    changes.append("nodes")
                }
                guard !changes.isEmpty else { throw RPCError.invalidArgument("nothing to change in cluster \(cluster.name)") }
                let response = try Self.clusterResponse(cluster.id, on: connection)
                try Self.emit(
                    "inventory.cluster.updated", subject: cluster.id,
                    attributes: ["cluster_name": response.cluster.name, "changes": changes.joined(separator: ","),
                                 "nodes": "\(nodes.count)"],
                    message: response.cluster, context: context, on: connection)
                return response
            }
        }
        router.register(InventoryAPI.deleteCluster) { (request: Rampart_Inventory_V1_DeleteClusterRequest, context) in
            context.audit.subject = request.cluster
            return try await pool.serve { connection in
                let cluster = try InventoryStore.cluster(request.cluster, on: connection)
                try InventoryStore.deleteCluster(id: cluster.id, on: connection)
                try Self.emit(
                    "inventory.cluster.deleted", subject: cluster.id, attributes: ["cluster_name": cluster.name],
                    message: cluster, context: context, on: connection)
                var response = Rampart_Inventory_V1_DeleteClusterResponse()
                response.clusterID = cluster.id
                return response
            }
        }
    }

    private static func nodes(_ devices: [Rampart_Inventory_V1_Device]) -> [Rampart_Inventory_V1_ClusterNode] {
        devices.enumerated().map { index, device in
            var node = Rampart_Inventory_V1_ClusterNode()
            node.deviceID = device.id
            node.role = index == 0 ? .clusterControl : .clusterData
            return node
        }
    }

    private static func clusterResponse(_ reference: String, on connection: PostgresConnection) throws
        -> Rampart_Inventory_V1_ClusterResponse
    {
        var response = Rampart_Inventory_V1_ClusterResponse()
        response.cluster = try InventoryStore.cluster(reference, on: connection)
        response.devices = try InventoryStore.devices(ids: response.cluster.nodes.map(\.deviceID), on: connection)
        return response
    }
}

/// Applying an `UpdateDeviceRequest`'s named fields to a device (pure).
public enum DeviceUpdate {
    /// The fields an update may name.
    public static let updatable: Set<String> = [
        "name", "serial", "model", "platform", "hypervisor", "software", "network_modules", "interfaces",
        "management_ip", "manager_id",
    ]

    /// `current` with the named fields taken from `values`; unknown field names are refused.
    public static func apply(fields: [String], from values: Rampart_Inventory_V1_Device, to current: Rampart_Inventory_V1_Device)
        throws -> Rampart_Inventory_V1_Device
    {
        var device = current
        for field in fields {
            switch field {
            case "name": device.name = values.name
            case "serial": device.serial = values.serial
            case "model": device.model = values.model
            case "platform": device.platform = values.platform
            case "hypervisor": device.hypervisor = values.hypervisor
            case "software": device.software = values.software
            case "network_modules": device.networkModules = values.networkModules
            case "interfaces": device.interfaces = values.interfaces
            case "management_ip": device.managementIp = values.managementIp
            case "manager_id": device.managerID = values.managerID
            default:
                throw RPCError.invalidArgument(
                    "field '\(field)' cannot be updated; updatable fields: \(updatable.sorted().joined(separator: ", "))")
            }
        }
        return device
    }
}
