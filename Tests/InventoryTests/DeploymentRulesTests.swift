import Foundation
import RampartBus
import RampartInventory
import RampartProto
import Testing

@testable import InventoryService

private func member(_ id: String, _ name: String) -> Device {
    goodDevice(id: id, name: name)
}

@Suite("Inventory: members of an HA pair or cluster (R3/R4: peers are the same kind)")
struct MemberValidationTests {
    @Test("two, three, one or no devices of the same kind may form a deployment")
    func sameKindAccepted() throws {
        try InventoryRules.validateMembers([member("a", "fw-a"), member("b", "fw-b")], forming: "HA pair")
        try InventoryRules.validateMembers(
            [member("a", "fw-a"), member("b", "fw-b"), member("c", "fw-c")], forming: "cluster")
        try InventoryRules.validateMembers([member("a", "fw-a")], forming: "cluster")
        try InventoryRules.validateMembers([], forming: "cluster")
    }

    @Test("the same device named twice is refused with INVALID_ARGUMENT naming it")
    func sameDeviceTwice() {
        let a = member("a", "fw-a")
        guard
            let error = rpcError({
                try InventoryRules.validateMembers([a, member("b", "fw-b"), a], forming: "cluster")
            })
        else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("fw-a"))
        #expect(error.message.contains("twice in the cluster"))
    }

    @Test("a device already in an HA pair is refused with FAILED_PRECONDITION naming it")
    func alreadyInPair() {
        var b = member("b", "fw-b")
        b.haPairID = "pair-1"
        guard
            let error = rpcError({ try InventoryRules.validateMembers([member("a", "fw-a"), b], forming: "cluster") })
        else { return }
        #expect(error.code == .failedPrecondition)
        #expect(error.message.contains("fw-b is already in an HA pair"))
    }

    @Test("a device already in a cluster is refused with FAILED_PRECONDITION naming it")
    func alreadyInCluster() {
        var a = member("a", "fw-a")
        a.clusterID = "cluster-1"
        guard
            let error = rpcError({ try InventoryRules.validateMembers([a, member("b", "fw-b")], forming: "HA pair") })
        else { return }
        #expect(error.code == .failedPrecondition)
        #expect(error.message.contains("fw-a is already in a cluster"))
    }

    /// A difference between two would-be peers, and words the refusal must hold besides both names.
    struct Difference: Sendable, CustomTestStringConvertible {
        var name: String
        var words: [String]
        var change: @Sendable (inout Device) -> Void
        var testDescription: String { name }
    }

    @Test(
        "R3/R4: peers that differ in model, version, patch or platform are refused with FAILED_PRECONDITION naming both devices",
        arguments: [
            Difference(name: "model", words: ["one model", "FPR-3120", "FPR-3130"]) { $0.model = "FPR-3130" },
            Difference(name: "version", words: ["one software version", "7.4.1 patch 2", "7.4.2 patch 2"]) {
                $0.software.version = "7.4.2"
            },
            Difference(
                name: "patch", words: ["one software version", "fw-a runs 7.4.1 patch 2, fw-b runs 7.4.1 patch 5"]
            ) {
                $0.software.patch = 5
            },
            Difference(name: "platform", words: ["one platform"]) { $0.platform = .nativeInstance },
            Difference(name: "hypervisor", words: ["one platform"]) {
                $0.platform = .virtual
                $0.hypervisor = .kvm
            },
        ])
    func differentKindRefused(_ difference: Difference) {
        var other = member("b", "fw-b")
        difference.change(&other)
        guard
            let error = rpcError({
                try InventoryRules.validateMembers([member("a", "fw-a"), other], forming: "HA pair")
            })
        else { return }
        #expect(error.code == .failedPrecondition)
        #expect(error.message.contains("the HA pair needs"))
        #expect(error.message.contains("fw-a"))
        #expect(error.message.contains("fw-b"))
        for word in difference.words {
            #expect(error.message.contains(word), "message was: \(error.message)")
        }
    }

    @Test("two virtual peers on different hypervisors are refused")
    func differentHypervisor() {
        var a = member("a", "fw-a")
        a.platform = .virtual
        a.hypervisor = .vmware
        var b = a
        b.id = "b"
        b.name = "fw-b"
        b.hypervisor = .kvm
        guard let error = rpcError({ try InventoryRules.requireSameKind(a, b, in: "cluster") }) else { return }
        #expect(error.code == .failedPrecondition)
    }

    @Test("the third member of a cluster differing from the first is refused naming the first and the third")
    func thirdMemberDiffers() {
        var c = member("c", "fw-c")
        c.model = "FPR-4215"
        guard
            let error = rpcError({
                try InventoryRules.validateMembers([member("a", "fw-a"), member("b", "fw-b"), c], forming: "cluster")
            })
        else { return }
        #expect(error.message.contains("fw-a is FPR-3120"))
        #expect(error.message.contains("fw-c is FPR-4215"))
    }
}

@Suite("Inventory: cluster shape (one control node, 1...15 data nodes)")
struct ClusterShapeTests {
    @Test("a control node with 1 or 15 data nodes is accepted", arguments: [1, 15])
    func accepted(_ dataNodes: Int) throws {
        try InventoryRules.validateClusterShape(control: "c", data: (1...dataNodes).map { "d\($0)" })
    }

    @Test("no control node is refused")
    func noControl() {
        guard let error = rpcError({ try InventoryRules.validateClusterShape(control: "", data: ["d1"]) }) else {
            return
        }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("control node"))
    }

    @Test("no data node is refused")
    func noData() {
        guard let error = rpcError({ try InventoryRules.validateClusterShape(control: "c", data: []) }) else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("data node"))
    }

    @Test("the control node also listed as a data node is refused naming it")
    func controlAsData() {
        guard let error = rpcError({ try InventoryRules.validateClusterShape(control: "c", data: ["d1", "c"]) }) else {
            return
        }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("'c' is also listed as a data node"))
    }

    @Test("a data node listed twice is refused naming it")
    func dataNodeTwice() {
        guard let error = rpcError({ try InventoryRules.validateClusterShape(control: "c", data: ["d1", "d2", "d1"]) })
        else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("'d1' is listed twice"))
    }

    @Test("more than 16 nodes is refused with the count given", arguments: [16, 40])
    func tooMany(_ dataNodes: Int) {
        guard
            let error = rpcError({
                try InventoryRules.validateClusterShape(control: "c", data: (1...dataNodes).map { "d\($0)" })
            })
        else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("at most 16 nodes; \(dataNodes + 1) were given"))
    }
}

/// The names people know the hypervisors by.
private let hypervisorNames: [Rampart_Inventory_V1_Hypervisor: String] = [
    .vmware: "VMware", .kvm: "KVM", .hyperv: "Hyper-V", .aws: "AWS", .azure: "Azure", .gcp: "Google Cloud",
    .oci: "Oracle Cloud", .openstack: "OpenStack", .nutanix: "Nutanix", .alibaba: "Alibaba Cloud",
    .unspecified: "an unknown hypervisor",
]

@Suite("B2: backup support matrix")
struct BackupSupportMatrixTests {
    @Test(
        "B2: every platform × hypervisor: physical, native and container supported; virtual only on VMware",
        arguments: Rampart_Inventory_V1_Platform.allCases, Rampart_Inventory_V1_Hypervisor.allCases)
    func matrix(_ platform: Rampart_Inventory_V1_Platform, _ hypervisor: Rampart_Inventory_V1_Hypervisor) {
        var device = goodDevice()
        device.platform = platform
        device.hypervisor = hypervisor
        let (supported, reason) = BackupSupportMatrix.evaluate(device)
        switch platform {
        case .physical, .nativeInstance, .containerInstance:
            #expect(supported)
            #expect(reason.isEmpty)
        case .virtual where hypervisor == .vmware:
            #expect(supported)
            #expect(reason.isEmpty)
        case .virtual:
            #expect(!supported)
            let name = hypervisorNames[hypervisor] ?? "?"
            #expect(reason.contains("threat defense virtual on \(name) cannot be backed up"), "reason: \(reason)")
            #expect(reason.contains("only VMware is supported"))
            #expect(reason.contains("B2"))
            #expect(reason.contains("recreated by hand"))
        case .unspecified, .UNRECOGNIZED:
            #expect(!supported)
            #expect(reason.contains("platform is unknown"))
        }
    }

    @Test("B2: threat defense virtual on KVM is refused with a reason naming KVM")
    func kvmRefused() {
        var device = goodDevice()
        device.platform = .virtual
        device.hypervisor = .kvm
        let (supported, reason) = BackupSupportMatrix.evaluate(device)
        #expect(!supported)
        #expect(reason.hasPrefix("threat defense virtual on KVM cannot be backed up"))
    }

    @Test("B2: an unrecognized platform number is not supported")
    func unrecognizedPlatform() {
        var device = goodDevice()
        device.platform = .UNRECOGNIZED(17)
        #expect(BackupSupportMatrix.evaluate(device).supported == false)
    }

    @Test("every hypervisor is shown by its usual name (KVM, Hyper-V, ...)", arguments: Rampart_Inventory_V1_Hypervisor.allCases)
    func hypervisorName(_ hypervisor: Rampart_Inventory_V1_Hypervisor) {
        #expect(BackupSupportMatrix.hypervisorName(hypervisor) == hypervisorNames[hypervisor])
    }
}

@Suite("Inventory: UpdateDevice applies only the fields it names")
struct DeviceUpdateTests {
    /// Values differing from `goodDevice()` in every updatable field.
    static func newValues() -> Device {
        var values = Device()
        values.id = "other-id"
        values.name = "fw-renamed"
        values.serial = "NEWSERIAL1"
        values.model = "FPR-4215"
        values.platform = .virtual
        values.hypervisor = .vmware
        values.software.version = "7.6.0"
        values.software.patch = 1
        values.networkModules = 4
        var group = Rampart_Inventory_V1_InterfaceGroup()
        group.type = "25GbE-SFP28"
        group.count = 4
        values.interfaces = [group]
        values.managementIp = "2001:db8::10"
        values.managerID = "manager-2"
        values.haPairID = "pair-9"
        values.clusterID = "cluster-9"
        values.role = .clusterControl
        values.connected = true
        values.outOfDate = true
        return values
    }

    /// `device` with `field` (by its wire name) copied from `values`.
    static func expected(_ device: Device, _ field: String, from values: Device) -> Device {
        var device = device
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
        default: Issue.record("no such field \(field)")
        }
        return device
    }

    @Test(
        "each updatable field, named alone, changes that field and nothing else",
        arguments: [
            "name", "serial", "model", "platform", "hypervisor", "software", "network_modules", "interfaces",
            "management_ip",
            "manager_id",
        ])
    func oneField(_ field: String) throws {
        let current = goodDevice(id: "dev-1")
        let values = Self.newValues()
        let updated = try DeviceUpdate.apply(fields: [field], from: values, to: current)
        #expect(updated == Self.expected(current, field, from: values))
        #expect(updated != current, "the field must actually change")
        #expect(updated.id == "dev-1")
    }

    @Test("no fields named leaves the device as it was")
    func noFields() throws {
        let current = goodDevice(id: "dev-1")
        #expect(try DeviceUpdate.apply(fields: [], from: Self.newValues(), to: current) == current)
    }

    @Test("several fields named change exactly those")
    func severalFields() throws {
        let current = goodDevice(id: "dev-1")
        let values = Self.newValues()
        let updated = try DeviceUpdate.apply(fields: ["software", "management_ip"], from: values, to: current)
        var expected = current
        expected.software = values.software
        expected.managementIp = values.managementIp
        #expect(updated == expected)
    }

    @Test(
        "identity, membership, role and presence fields, and unknown names, are refused with INVALID_ARGUMENT naming the field",
        arguments: ["id", "ha_pair_id", "cluster_id", "role", "connected", "out_of_date", "managementIp", "Name", ""])
    func refusedField(_ field: String) {
        guard
            let error = rpcError({
                _ = try DeviceUpdate.apply(fields: ["name", field], from: Self.newValues(), to: goodDevice())
            })
        else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("field '\(field)' cannot be updated"))
        #expect(error.message.contains("management_ip, manager_id, model, name"), "lists the updatable fields, sorted")
    }

    @Test("the updatable set is exactly the ten editable device fields")
    func updatableSet() {
        #expect(
            DeviceUpdate.updatable == [
                "name", "serial", "model", "platform", "hypervisor", "software", "network_modules", "interfaces",
                "management_ip", "manager_id",
            ])
    }
}

@Suite("Inventory: labels stored in the database (Codes.swift)")
struct LabelTests {
    @Test("platform labels round trip; unspecified has no label and '' or an unknown label parse to nil")
    func platformLabels() {
        let expected: [Rampart_Inventory_V1_Platform: String] = [
            .physical: "physical", .nativeInstance: "native-instance", .containerInstance: "container-instance",
            .virtual: "virtual", .unspecified: "",
        ]
        for platform in Rampart_Inventory_V1_Platform.allCases {
            #expect(platform.label == expected[platform], "\(platform)")
            if platform != .unspecified {
                #expect(Rampart_Inventory_V1_Platform(label: platform.label) == platform)
            }
        }
        #expect(Rampart_Inventory_V1_Platform(label: "") == nil)
        #expect(Rampart_Inventory_V1_Platform(label: "Physical") == nil)
        #expect(Rampart_Inventory_V1_Platform(label: "native_instance") == nil)
        #expect(Rampart_Inventory_V1_Platform.UNRECOGNIZED(9).label == "")
    }

    @Test("hypervisor labels round trip, '' being unspecified; unknown labels parse to nil")
    func hypervisorLabels() {
        let expected: [Rampart_Inventory_V1_Hypervisor: String] = [
            .unspecified: "", .vmware: "vmware", .kvm: "kvm", .hyperv: "hyperv", .aws: "aws", .azure: "azure",
            .gcp: "gcp",
            .oci: "oci", .openstack: "openstack", .nutanix: "nutanix", .alibaba: "alibaba",
        ]
        for hypervisor in Rampart_Inventory_V1_Hypervisor.allCases {
            #expect(hypervisor.label == expected[hypervisor], "\(hypervisor)")
            #expect(Rampart_Inventory_V1_Hypervisor(label: hypervisor.label) == hypervisor)
        }
        #expect(Rampart_Inventory_V1_Hypervisor(label: "VMware") == nil)
        #expect(Rampart_Inventory_V1_Hypervisor(label: "xen") == nil)
    }

    @Test("role labels are the documented names, distinct, empty only for unspecified")
    func roleLabels() {
        let expected: [Rampart_Inventory_V1_Role: String] = [
            .unspecified: "", .standalone: "standalone", .haPrimary: "ha-primary", .haSecondary: "ha-secondary",
            .clusterControl: "cluster-control", .clusterData: "cluster-data",
        ]
        for role in Rampart_Inventory_V1_Role.allCases {
            #expect(role.label == expected[role], "\(role)")
        }
        #expect(Set(Rampart_Inventory_V1_Role.allCases.map(\.label)).count == Rampart_Inventory_V1_Role.allCases.count)
    }

    @Test("HA sync state labels round trip; others parse to nil")
    func syncStateLabels() {
        #expect(Rampart_Inventory_V1_SyncState.active.label == "active")
        #expect(Rampart_Inventory_V1_SyncState.suspended.label == "suspended")
        #expect(Rampart_Inventory_V1_SyncState.unspecified.label == "")
        for state in [Rampart_Inventory_V1_SyncState.active, .suspended] {
            #expect(Rampart_Inventory_V1_SyncState(label: state.label) == state)
        }
        #expect(Rampart_Inventory_V1_SyncState(label: "") == nil)
        #expect(Rampart_Inventory_V1_SyncState(label: "Active") == nil)
    }
}
