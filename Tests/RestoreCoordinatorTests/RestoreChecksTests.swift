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
        #expect(reasons.contains { $0.hasPrefix("interfaces 10GbE-SFP+: the replacement has 0, the backup's device had 4") })
        #expect(reasons.contains { $0.hasPrefix("interfaces 25GbE-SFP28: the replacement has 4, the backup's device had 0") })
    }

    @Test("R4: another version or another patch is refused", arguments: [("7.4.2", UInt32(2)), ("7.4.1", UInt32(3)), ("7.4.1", UInt32(0))])
    func software(version: String, patch: UInt32) {
        var s = Self.situation()
        s.facts.software.version = version
        s.facts.software.patch = patch
        let reasons = RestoreChecks.refusals(s)
        #expect(reasons.count == 1 && reasons[0].hasPrefix("software:") && reasons[0].contains("7.4.1 patch 2") && reasons[0].contains("R4"))
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
}
