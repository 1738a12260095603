import RampartArchive
import RampartProto

/// The checks before a restore lease (R3–R8, R12, R14), pure: every difference is named, so an
/// operator sees at once everything that stands between the replacement and the restore.
/// `RequestLease` grants a lease only when every check of `checks(_:active:)` passes; `CheckRestore`
/// answers the same checks one by one, recording nothing.
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

        /// What one restore at a time is counted over: the HA pair for a peer, the cluster for a node,
        /// the device itself otherwise (one active lease per scope).
        public var scope: String {
            !device.haPairID.isEmpty
                ? "ha-pair:\(device.haPairID)" : !device.clusterID.isEmpty ? "cluster:\(device.clusterID)" : "device:\(device.id)"
        }
    }

    /// One check: its name, the rules it decides, what it found when it passed, every reason when not.
    public struct Check: Sendable, Equatable {
        /// A short name ("hardware").
        public var name: String
        /// The rules it decides ("R3").
        public var rules: String
        /// Passed: what was found.
        public var detail: String
        /// Why it failed; empty when it passed.
        public var reasons: [String]

        /// Whether it passed.
        public var passed: Bool { reasons.isEmpty }

        /// A check that found `detail` when `reasons` is empty.
        public init(_ name: String, _ rules: String, detail: String = "", reasons: [String]) {
            self.name = name
            self.rules = rules
            self.detail = detail
            self.reasons = reasons
        }

        /// On the wire.
        public var message: Rampart_Restore_V1_RestoreCheck {
            var check = Rampart_Restore_V1_RestoreCheck()
            check.name = name
            check.rules = rules
            check.passed = passed
            check.detail = passed ? detail : ""
            check.reasons = reasons
            return check
        }
    }

    /// Every reason to refuse, each naming what differs; empty when the restore may go ahead
    /// (ordering against other restores is decided separately, by `order(_:active:)`).
    public static func refusals(_ s: Situation) -> [String] {
        checks(s).flatMap(\.reasons)
    }

    /// Every check but the order, in the order RequestLease names their reasons.
    public static func checks(_ s: Situation) -> [Check] {
        let manifest = s.manifest, facts = s.facts, device = s.device
        var checks: [Check] = []
        // R5, R14: the backup restores only its own appliance, which must still be registered.
        checks.append(
            Check(
                "own appliance", "R5, R14",
                detail: "the backup is of \(device.name) (\(device.id)), registered in inventory",
                reasons: device.id != manifest.deviceId
                    ? ["the backup is of device \(manifest.deviceId), not \(device.id) (R5)"] : []))
        // R6: a backup taken under another manager, or a device registered with another one.
        var manager: [String] = []
        if manifest.managerId != s.managerId {
            manager.append(
                "the backup was taken under manager \(quoted(manifest.managerId)), this manager is \(quoted(s.managerId)) (R6)")
        }
        if !device.managerID.isEmpty && device.managerID != s.managerId {
            manager.append("device \(device.name) is registered with manager \(quoted(device.managerID)), not this one (R6)")
        }
        checks.append(Check("manager", "R6", detail: "backup and device are this manager's (\(s.managerId))", reasons: manager))
        // R3: same model, modules, interfaces — as the backup says (ApplianceMatch, as the device
        // checks it) and, for the model, as inventory says.
        let replacement = ApplianceMatch.Facts(
            model: facts.model, networkModules: Int(facts.networkModules),
            interfaces: facts.interfaces.map { ($0.key, Int($0.value)) }, version: facts.software.version,
            patch: Int(facts.software.patch))
        let backup = ApplianceMatch.Facts(manifest)
        var hardware = ApplianceMatch.hardware(replacement, backup: backup, subject: "the replacement")
        if facts.model == manifest.model && facts.model != device.model {
            hardware.append("model: the replacement is a \(facts.model), inventory has \(device.model) for \(device.name) (R3)")
        }
        checks.append(
            Check(
                "hardware", "R3",
                detail: "\(facts.model), \(facts.networkModules) network module(s), interfaces \(replacement.interfacesText)",
                reasons: hardware))
        // R4: the same software version, patch included.
        checks.append(
            Check(
                "software", "R4", detail: describe(facts.software.version, Int(facts.software.patch)),
                reasons: ApplianceMatch.software(replacement, backup: backup, subject: "the replacement")))
        // R7: the file of the right role.
        checks.append(
            Check(
                "role", "R7", detail: "the \(manifest.role.rawValue) file for the \(device.role.label) device",
                reasons: manifest.role.rawValue != device.role.label
                    ? [
                        "role: the backup is the \(manifest.role.rawValue) file, but \(device.name) is \(device.role.label.isEmpty ? "unassigned" : device.role.label) now: pick the file of its role (R7)"
                    ] : []))
        // R12: the faulty device must be disconnected (its management IP would conflict).
        checks.append(
            Check(
                "original disconnected", "R12", detail: "\(device.name) is disconnected",
                reasons: device.connected
                    ? [
                        "device \(device.name) is still connected: disconnect the faulty device first, its management IP \(device.managementIp) would conflict (R12)"
                    ] : []))
        // R7: the HA pair must not be suspended or broken.
        if !device.haPairID.isEmpty {
            var reasons: [String] = []
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
            checks.append(Check("HA pair", "R7", detail: "\(s.pair?.name ?? "") holds it and is not suspended", reasons: reasons))
        }
        // R8: the cluster must be intact.
        if !device.clusterID.isEmpty {
            var reasons: [String] = []
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
            checks.append(
                Check("cluster", "R8", detail: "\(s.cluster?.name ?? "") holds it with one control node", reasons: reasons))
        }
        return checks
    }

    /// The order of restores (R7, R8; one at a time per device): the scope's `active` lease (the one
    /// that holds it now, if any) and, for a data node, its control node.
    public static func order(_ s: Situation, active: Rampart_Restore_V1_Lease?) -> Check {
        var reasons: [String] = []
        if let active { reasons.append(busyReason(active, for: s.device)) }
        if let wait = controlNodeWait(s) { reasons.append(wait) }
        let rules = !s.device.haPairID.isEmpty ? "R7" : !s.device.clusterID.isEmpty ? "R8" : "R1"
        let detail =
            !s.device.haPairID.isEmpty
            ? "no restore of its HA pair is under way"
            : !s.device.clusterID.isEmpty
                ? "no restore in its cluster is under way" + (s.device.role == .clusterData ? "; its control node is connected" : "")
                : "no other restore of \(s.device.name) is under way"
        return Check("order", rules, detail: detail, reasons: reasons)
    }

    /// Why the scope is taken by `active`, for `device`.
    public static func busyReason(_ active: Rampart_Restore_V1_Lease, for device: Rampart_Inventory_V1_Device) -> String {
        if active.deviceID == device.id {
            return "\(device.name) is already being restored (lease \(active.id), step \(active.step))"
        }
        if !device.haPairID.isEmpty {
            return
                "its HA peer \(active.deviceName) is being restored (step \(active.step)): the second peer starts only after the first has finished, reboot included (R7)"
        }
        return
            "node \(active.deviceName) of its cluster is being restored (step \(active.step)): one node at a time, each reboot included (R8)"
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
