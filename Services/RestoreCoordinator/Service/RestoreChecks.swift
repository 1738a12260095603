import InventoryService
import RampartArchive
import RampartProto

/// The checks before a restore lease (R3–R8, R12, R14), pure: every difference is named, so an
/// operator sees at once everything that stands between the replacement and the restore.
public enum RestoreChecks {
    /// What is known when a lease is asked for.
    public struct Situation: Sendable {
        /// The backup's manifest.
        public var manifest: BackupManifest
        /// The replacement device's own facts.
        public var facts: Rampart_Restore_V1_DeviceFacts
        /// The backup's device as inventory has it now.
        public var device: Rampart_Inventory_V1_Device
        /// This manager's id.
        public var managerId: String
        /// The device's HA pair, when it is in one (nil when inventory lost it: a broken pair).
        public var pair: Rampart_Inventory_V1_HaPair?
        /// The device's cluster and its nodes, when it is in one.
        public var cluster: Rampart_Inventory_V1_Cluster?
        /// The cluster's devices as inventory has them (for the control node's presence).
        public var clusterDevices: [Rampart_Inventory_V1_Device]

        /// A situation; pair, cluster and its devices default to none.
        public init(
            manifest: BackupManifest, facts: Rampart_Restore_V1_DeviceFacts, device: Rampart_Inventory_V1_Device,
            managerId: String, pair: Rampart_Inventory_V1_HaPair? = nil, cluster: Rampart_Inventory_V1_Cluster? = nil,
            clusterDevices: [Rampart_Inventory_V1_Device] = []
        ) {
            self.manifest = manifest
            self.facts = facts
            self.device = device
            self.managerId = managerId
            self.pair = pair
            self.cluster = cluster
            self.clusterDevices = clusterDevices
        }
    }

    /// Every reason to refuse, each naming what differs; empty when the restore may go ahead
    /// (ordering against other restores is decided separately, under the database lock).
    public static func refusals(_ s: Situation) -> [String] {
        var reasons: [String] = []
        let manifest = s.manifest, facts = s.facts, device = s.device
        // R5, R14: the backup restores only its own appliance, which must still be registered.
        if device.id != manifest.deviceId {
            reasons.append("the backup is of device \(manifest.deviceId), not \(device.id) (R5)")
        }
        // R6: a backup taken under another manager.
        if manifest.managerId != s.managerId {
            reasons.append(
                "the backup was taken under manager \(quoted(manifest.managerId)), this manager is \(quoted(s.managerId)) (R6)")
        }
        if !device.managerID.isEmpty && device.managerID != s.managerId {
            reasons.append("device \(device.name) is registered with manager \(quoted(device.managerID)), not this one (R6)")
        }
        // R3: same model, modules, interfaces — as the backup says and as inventory says.
        if facts.model != manifest.model {
            reasons.append("model: the replacement is \(facts.model), the backup's device is \(manifest.model) (R3)")
        } else if facts.model != device.model {
            reasons.append("model: the replacement is \(facts.model), inventory has \(device.model) for \(device.name) (R3)")
        }
        if Int(facts.networkModules) != manifest.networkModules {
            reasons.append(
                "network modules: the replacement has \(facts.networkModules), the backup's device had \(manifest.networkModules) (R3)")
        }
        let mine = facts.interfaces.mapValues(Int.init)
        let theirs = Dictionary(manifest.interfaces.map { ($0.type, $0.count) }, uniquingKeysWith: +)
        for type in Set(mine.keys).union(theirs.keys).sorted() where mine[type, default: 0] != theirs[type, default: 0] {
            reasons.append(
                "interfaces \(type): the replacement has \(mine[type, default: 0]), the backup's device had \(theirs[type, default: 0]) (R3)")
        }
        // R4: the same software version, patch included.
        let backupVersion = describe(manifest.software.version, manifest.software.patch)
        let ownVersion = describe(facts.software.version, Int(facts.software.patch))
        if backupVersion != ownVersion {
            reasons.append("software: the replacement runs \(ownVersion), the backup was taken on \(backupVersion) (R4)")
        }
        // R7: the file of the right role.
        if manifest.role.rawValue != device.role.label {
            reasons.append(
                "role: the backup is the \(manifest.role.rawValue) file, but \(device.name) is \(device.role.label.isEmpty ? "unassigned" : device.role.label) now: pick the file of its role (R7)")
        }
        // R12: the faulty device must be disconnected (its management IP would conflict).
        if device.connected {
            reasons.append(
                "device \(device.name) is still connected: disconnect the faulty device first, its management IP \(device.managementIp) would conflict (R12)")
        }
        // R7: the HA pair must not be suspended or broken.
        if !device.haPairID.isEmpty {
            if let pair = s.pair {
                if pair.syncState == .suspended {
                    reasons.append("HA pair \(pair.name) is suspended: do not suspend or break HA to restore a peer (R7)")
                }
                if pair.primaryID != device.id && pair.secondaryID != device.id {
                    reasons.append("HA pair \(pair.name) no longer holds \(device.name): the pair is broken (R7)")
                }
            } else {
                reasons.append("the HA pair of \(device.name) is gone: the pair is broken (R7, R12)")
            }
        }
        // R8: the cluster must be intact.
        if !device.clusterID.isEmpty {
            if let cluster = s.cluster {
                let controls = cluster.nodes.filter { $0.role == .clusterControl }
                if controls.count != 1 {
                    reasons.append("cluster \(cluster.name) has \(controls.count) control nodes: it is not intact (R8)")
                }
                if !cluster.nodes.contains(where: { $0.deviceID == device.id }) {
                    reasons.append("cluster \(cluster.name) no longer holds \(device.name): it is not intact (R8)")
                }
            } else {
                reasons.append("the cluster of \(device.name) is gone: it is not intact (R8, R12)")
            }
        }
        return reasons
    }

    /// R8: a data node waits while its cluster's control node is not connected (being replaced, or
    /// not yet rejoined); nil when it may go.
    public static func controlNodeWait(_ s: Situation) -> String? {
        guard s.device.role == .clusterData, let cluster = s.cluster,
            let control = cluster.nodes.first(where: { $0.role == .clusterControl })
        else { return nil }
        guard let controlDevice = s.clusterDevices.first(where: { $0.id == control.deviceID }) else {
            return "the control node of cluster \(cluster.name) is unknown to inventory (R8)"
        }
        guard controlDevice.connected else {
            return
                "control node \(controlDevice.name) of cluster \(cluster.name) is not connected: restore the control node first and wait until it rejoins (R8)"
        }
        return nil
    }

    static func describe(_ version: String, _ patch: Int) -> String {
        patch > 0 ? "\(version) patch \(patch)" : "\(version) (no patch)"
    }

    static func quoted(_ text: String) -> String { "\"\(text)\"" }
}
