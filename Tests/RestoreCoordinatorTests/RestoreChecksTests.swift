import Foundation
import RampartArchive
import RampartProto
import Testing

@testable import RestoreCoordinatorService

/// The checks before a restore lease, pure: each refusal names what differs (R3–R8, R12, R14).
@Suite("Restore checks before a lease (pure)")
struct RestoreChecksTests {
    static let deviceId = "5b0e1c7a-0000-4000-8000-000000000001"

    static func manifest(role: BackupRole = .standalone) -> BackupManifest {
        BackupManifest(
            deviceId: deviceId, deviceName: "fw-1", serial: "SN-OLD", managerId: "rampart-manager", model: "FPR-3120",
            platform: "physical", networkModules: 1,
            interfaces: [.init(type: "1GbE-RJ45", count: 8), .init(type: "10GbE-SFP+", count: 4)],
            software: .init(version: "7.4.1", patch: 2), role: role, managementIp: "192.0.2.10",
            createdAt: "2026-11-27T10:00:00Z")
    }

    static func facts() -> Rampart_Restore_V1_DeviceFacts {
        var facts = Rampart_Restore_V1_DeviceFacts()
        facts.serial = "SN-NEW"
        facts.model = "FPR-3120"
        facts.platform = "physical"
        facts.networkModules = 1
        facts.interfaces = ["1GbE-RJ45": 8, "10GbE-SFP+": 4]
        facts.software.version = "7.4.1"
        facts.software.patch = 2
        return facts
    }

    static func device() -> Rampart_Inventory_V1_Device {
        var device = Rampart_Inventory_V1_Device()
        device.id = deviceId
        device.name = "fw-1"
        device.serial = "SN-OLD"
        device.model = "FPR-3120"
        device.managerID = "rampart-manager"
        device.role = .standalone
        device.managementIp = "192.0.2.10"
        device.connected = false
        return device
    }

    static func situation() -> RestoreChecks.Situation {
        RestoreChecks.Situation(manifest: manifest(), facts: facts(), device: device(), managerId: "rampart-manager")
    }

    @Test("R3, R4: a matching replacement of a disconnected standalone device passes")
    func passes() {
        #expect(RestoreChecks.refusals(Self.situation()).isEmpty)
    }

    @Test("R3: another model is refused, naming both models")
    func model() {
        var s = Self.situation()
        s.facts.model = "FPR-3130"
        let reasons = RestoreChecks.refusals(s)
        #expect(reasons.count == 1 && reasons[0].contains("FPR-3130") && reasons[0].contains("FPR-3120") && reasons[0].contains("R3"))
    }

    @Test("R3: another number of network modules is refused")
    func modules() {
        var s = Self.situation()
        s.facts.networkModules = 2
        #expect(RestoreChecks.refusals(s) == ["network modules: the replacement has 2, the backup's device had 1 (R3)"])
    }

    @Test("R3: another type or number of interfaces is refused, naming each type that differs")
    func interfaces() {
        var s = Self.situation()
        s.facts.interfaces = ["1GbE-RJ45": 8, "25GbE-SFP28": 4]
        let reasons = RestoreChecks.refusals(s)
        #expect(reasons.count == 2)
        #expect(reasons.contains { $0.hasPrefix("interfaces: the backup's device had 4 10GbE-SFP+, the replacement has none") })
        #expect(reasons.contains { $0.hasPrefix("interfaces: the replacement has 4 25GbE-SFP28, the backup's device had none") })
    }

    @Test("R4: another version or another patch is refused", arguments: [("7.4.2", UInt32(2)), ("7.4.1", UInt32(3)), ("7.4.1", UInt32(0))])
    func software(version: String, patch: UInt32) {
        var s = Self.situation()
        s.facts.software.version = version
        s.facts.software.patch = patch
        let reasons = RestoreChecks.refusals(s)
        let field = version == "7.4.1" ? "patch:" : "software version:"
        #expect(reasons.count == 1 && reasons[0].hasPrefix(field) && reasons[0].contains("7.4.1 patch 2") && reasons[0].contains("R4"), "\(reasons)")
    }

    @Test("R6: a backup taken under another manager is refused")
    func manager() {
        var s = Self.situation()
        s.manifest.managerId = "other-fmc"
        #expect(RestoreChecks.refusals(s).first?.contains("R6") == true)
    }

    @Test("R5: a backup of another device is refused")
    func otherDevice() {
        var s = Self.situation()
        s.device.id = "5b0e1c7a-0000-4000-8000-000000000002"
        #expect(RestoreChecks.refusals(s).first?.contains("R5") == true)
    }

    @Test("R7: the file of another role is refused")
    func role() {
        var s = Self.situation()
        s.manifest.role = .haSecondary
        s.device.role = .haPrimary
        s.device.haPairID = "pair-1"
        var pair = Rampart_Inventory_V1_HaPair()
        pair.id = "pair-1"
        pair.name = "ha1"
        pair.primaryID = Self.deviceId
        pair.syncState = .active
        s.pair = pair
        let reasons = RestoreChecks.refusals(s)
        #expect(reasons.count == 1 && reasons[0].contains("ha-secondary") && reasons[0].contains("ha-primary"))
    }

    @Test("R12: the original device still connected is refused (management IP conflict)")
    func connected() {
        var s = Self.situation()
        s.device.connected = true
        let reasons = RestoreChecks.refusals(s)
        #expect(reasons.count == 1 && reasons[0].contains("still connected") && reasons[0].contains("192.0.2.10"))
    }

    @Test("R7: a suspended or broken HA pair is refused")
    func haPair() {
        var s = Self.situation()
        s.manifest.role = .haPrimary
        s.device.role = .haPrimary
        s.device.haPairID = "pair-1"
        var pair = Rampart_Inventory_V1_HaPair()
        pair.id = "pair-1"
        pair.name = "ha1"
        pair.primaryID = Self.deviceId
        pair.syncState = .suspended
        s.pair = pair
        #expect(RestoreChecks.refusals(s).first?.contains("suspended") == true)
        s.pair = nil
        #expect(RestoreChecks.refusals(s).first?.contains("broken") == true)
    }

    @Test("R8: a data node waits while the control node is not connected; goes once it is")
    func controlFirst() {
        var s = Self.situation()
        s.manifest.role = .clusterData
        s.device.role = .clusterData
        s.device.clusterID = "cluster-1"
        var cluster = Rampart_Inventory_V1_Cluster()
        cluster.id = "cluster-1"
        cluster.name = "c1"
        var control = Rampart_Inventory_V1_ClusterNode()
        control.deviceID = "control-id"
        control.role = .clusterControl
        var data = Rampart_Inventory_V1_ClusterNode()
        data.deviceID = Self.deviceId
        data.role = .clusterData
        cluster.nodes = [control, data]
        s.cluster = cluster
        var controlDevice = Rampart_Inventory_V1_Device()
        controlDevice.id = "control-id"
        controlDevice.name = "c1-n1"
        controlDevice.connected = false
        s.clusterDevices = [controlDevice, s.device]
        #expect(RestoreChecks.refusals(s).isEmpty)
        #expect(RestoreChecks.controlNodeWait(s)?.contains("restore the control node first") == true)
        s.clusterDevices[0].connected = true
        #expect(RestoreChecks.controlNodeWait(s) == nil)
        s.cluster?.nodes = [data]
        #expect(RestoreChecks.refusals(s).contains { $0.contains("0 control nodes") })
    }

    @Test("every difference at once: model, version and connection are all named")
    func several() {
        var s = Self.situation()
        s.facts.model = "FPR-1010"
        s.facts.software.patch = 0
        s.device.connected = true
        #expect(RestoreChecks.refusals(s).count == 3)
    }

    @Test("R3, R4, R5, R6, R7, R12: CheckRestore's checks are RequestLease's refusals, one check per rule, in the same order")
    func checksAreTheRefusals() {
        var s = Self.situation()
        let passing = RestoreChecks.checks(s)
        #expect(passing.map(\.name) == ["own appliance", "manager", "hardware", "software", "role", "original disconnected"])
        #expect(passing.allSatisfy { $0.passed && !$0.detail.isEmpty }, "\(passing)")
        s.facts.model = "FPR-1010"
        s.facts.software.patch = 0
        s.device.connected = true
        s.manifest.managerId = "another-fmc"
        let failing = RestoreChecks.checks(s)
        #expect(failing.flatMap(\.reasons) == RestoreChecks.refusals(s))
        #expect(failing.filter { !$0.passed }.map(\.name) == ["manager", "hardware", "software", "original disconnected"])
        #expect(failing.first { $0.name == "software" }?.rules == "R4")
        // On the wire a failed check carries its reasons and no detail.
        let wire = failing.first { $0.name == "hardware" }!.message
        #expect(!wire.passed && wire.detail.isEmpty && wire.reasons.first?.contains("FPR-1010") == true)
        // A pair member and a cluster member get the check of their group.
        s = Self.situation()
        s.device.haPairID = "pair-1"
        #expect(RestoreChecks.checks(s).last?.name == "HA pair")
        s.device.haPairID = ""
        s.device.clusterID = "cluster-1"
        #expect(RestoreChecks.checks(s).last?.name == "cluster")
    }

    @Test("R7, R8: the order check names the lease that holds the scope, and the control node a data node waits for")
    func order() {
        var s = Self.situation()
        #expect(s.scope == "device:\(Self.deviceId)")
        #expect(RestoreChecks.order(s, active: nil).passed)
        var active = Rampart_Restore_V1_Lease()
        active.id = "lease-1"
        active.deviceID = Self.deviceId
        active.deviceName = "fw-1"
        active.step = "applying"
        #expect(RestoreChecks.order(s, active: active).reasons == ["fw-1 is already being restored (lease lease-1, step applying)"])
        s.device.haPairID = "pair-1"
        active.deviceID = "peer-id"
        active.deviceName = "fw-1b"
        let peer = RestoreChecks.order(s, active: active)
        #expect(s.scope == "ha-pair:pair-1" && peer.rules == "R7")
        #expect(peer.reasons.count == 1 && peer.reasons[0].contains("its HA peer fw-1b is being restored"), "\(peer)")
    }

    static func backup(
        _ id: String, sha256: String, createdMs: Int64, owner: String = deviceId, file: String? = nil,
        members: [(device: String, file: String, sha256: String)] = []
    ) -> Rampart_Backup_V1_Backup {
        var backup = Rampart_Backup_V1_Backup()
        backup.id = id
        backup.ownerID = owner
        backup.fileName = file ?? "fw-1_\(id).tar"
        backup.sha256 = sha256
        backup.createdUnixMs = createdMs
        backup.members = members.map { member in
            var stored = Rampart_Backup_V1_BundleMember()
            stored.deviceID = member.device
            stored.fileName = member.file
            stored.sha256 = member.sha256
            return stored
        }
        return backup
    }

    @Test("a newer backup of the device than the one restored is found by its SHA-256, else by the manifest's time")
    func newerBackups() {
        let created = Date(timeIntervalSince1970: 1_790_000_000)  // the manifest's time, whole seconds
        let ms = Int64(1_790_000_000_000)
        // Newest first, as ListBackups answers.
        let backups = [
            Self.backup("c", sha256: "sha-c", createdMs: ms + 7_000),
            Self.backup("b", sha256: "sha-b", createdMs: ms + 3_000, owner: "another-device"),
            Self.backup("a", sha256: "sha-a", createdMs: ms + 400),
        ]
        func newest(_ sha: String, _ among: [Rampart_Backup_V1_Backup] = backups, createdAt: Date? = created)
            -> Rampart_Restore_V1_NewerBackup?
        {
            NewerBackups.newest(after: sha, createdAt: createdAt, deviceId: Self.deviceId, among: among)
        }
        #expect(newest("sha-a")?.fileName == "fw-1_c.tar" && newest("sha-a")?.createdUnixMs == ms + 7_000)
        #expect(newest("sha-a")?.backupID == "c")
        #expect(newest("sha-c") == nil, "the newest itself has nothing newer")
        // Not held by Rampart: compared with the manifest's time; the same second is not newer.
        #expect(newest("sha-elsewhere", [Self.backup("a", sha256: "sha-a", createdMs: ms + 400)]) == nil)
        #expect(newest("sha-elsewhere")?.backupID == "c")
        #expect(newest("sha-elsewhere", createdAt: nil) == nil)
        // A cluster node: its file in the newer bundle, and the bundle's name.
        let bundles = [
            Self.backup(
                "n", sha256: "bundle-n", createdMs: ms + 9_000, owner: "cluster-1", file: "cl.20260101T000009Z.tar.gz",
                members: [("other", "cl-n2_data_x.tar", "sha-o"), (Self.deviceId, "fw-1_data_n.tar", "sha-n")]),
            Self.backup(
                "m", sha256: "bundle-m", createdMs: ms, owner: "cluster-1", file: "cl.20260101T000000Z.tar.gz",
                members: [(Self.deviceId, "fw-1_data_m.tar", "sha-m")]),
        ]
        let found = newest("sha-m", bundles)
        #expect(found?.fileName == "fw-1_data_n.tar" && found?.bundleFileName == "cl.20260101T000009Z.tar.gz")
        #expect(newest("sha-n", bundles) == nil)
    }
}
