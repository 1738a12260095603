import Foundation
import RampartBus
import RampartInventory
import RampartProto
import Testing

@testable import InventoryService

/// One bad field of a device and the words the refusal must contain.
struct BadField: Sendable, CustomTestStringConvertible {
    var name: String
    var naming: String
    var change: @Sendable (inout Device) -> Void

    var testDescription: String { name }
}

private func group(_ type: String, _ count: UInt32) -> Rampart_Inventory_V1_InterfaceGroup {
    var group = Rampart_Inventory_V1_InterfaceGroup()
    group.type = type
    group.count = count
    return group
}

private let badFields: [BadField] = [
    BadField(name: "empty name", naming: "device name") { $0.name = "" },
    BadField(name: "name of 65 characters", naming: "device name") { $0.name = String(repeating: "a", count: 65) },
    BadField(name: "name with a space", naming: "device name") { $0.name = "fw edge" },
    BadField(name: "name with a slash", naming: "device name") { $0.name = "fw/edge" },
    BadField(name: "name starting with '-'", naming: "device name") { $0.name = "-fw" },
    BadField(name: "name starting with '.'", naming: "device name") { $0.name = ".fw" },
    BadField(name: "name with a non-ASCII letter", naming: "device name") { $0.name = "pare-feu-é" },
    BadField(name: "name that is a UUID", naming: "device name") { $0.name = "6F9619FF-8B86-D011-B42D-00C04FC964FF" },
    BadField(name: "empty serial", naming: "serial") { $0.serial = "" },
    BadField(name: "serial with a dash", naming: "serial") { $0.serial = "JAD-2419" },
    BadField(name: "serial of 65 characters", naming: "serial") { $0.serial = String(repeating: "A", count: 65) },
    BadField(name: "serial with a non-ASCII digit", naming: "serial") { $0.serial = "JAD٣" },
    BadField(name: "empty model", naming: "model") { $0.model = "" },
    BadField(name: "blank model", naming: "model") { $0.model = "   " },
    BadField(name: "model of 65 characters", naming: "model") { $0.model = String(repeating: "M", count: 65) },
    BadField(name: "unspecified platform", naming: "platform") { $0.platform = .unspecified },
    BadField(name: "unrecognized platform", naming: "platform") { $0.platform = .UNRECOGNIZED(42) },
    BadField(name: "virtual without a hypervisor", naming: "hypervisor") {
        $0.platform = .virtual
        $0.hypervisor = .unspecified
    },
    BadField(name: "physical with a hypervisor", naming: "hypervisor") { $0.hypervisor = .vmware },
    BadField(name: "container instance with a hypervisor", naming: "hypervisor") {
        $0.platform = .containerInstance
        $0.hypervisor = .kvm
    },
    BadField(name: "missing software version", naming: "software version") { $0.software.version = "" },
    BadField(name: "software version with the patch in it", naming: "software version") {
        $0.software.version = "7.4.1-2"
    },
    BadField(name: "17 network modules", naming: "network modules") { $0.networkModules = 17 },
    BadField(name: "interface group without a type", naming: "interface type") { $0.interfaces = [group("", 4)] },
    BadField(name: "interface type of 33 characters", naming: "interface type") {
        $0.interfaces = [group(String(repeating: "t", count: 33), 4)]
    },
    BadField(name: "interface count 0", naming: "interface count for 1GbE") { $0.interfaces = [group("1GbE", 0)] },
    BadField(name: "interface count 1025", naming: "interface count for 1GbE") {
        $0.interfaces = [group("1GbE", 1025)]
    },
    BadField(name: "interface type listed twice", naming: "interface type 1GbE is listed twice") {
        $0.interfaces = [group("1GbE", 4), group("10GbE", 2), group("1GbE", 2)]
    },
    BadField(name: "empty management IP", naming: "management IP") { $0.managementIp = "" },
    BadField(name: "host name as management IP", naming: "management IP 'fw.example.com'") {
        $0.managementIp = "fw.example.com"
    },
    BadField(name: "management IP with a prefix length", naming: "management IP") { $0.managementIp = "192.0.2.1/24" },
    BadField(name: "empty manager id", naming: "manager id") { $0.managerID = "" },
    BadField(name: "manager id of 129 characters", naming: "manager id") {
        $0.managerID = String(repeating: "m", count: 129)
    },
]

@Suite("Inventory: device fields (validateDevice)")
struct DeviceValidationTests {
    @Test("a complete physical device is accepted")
    func goodDeviceAccepted() throws {
        try InventoryRules.validateDevice(goodDevice())
    }

    @Test(
        "B2: devices of every supported kind are accepted",
        arguments: [
            (Rampart_Inventory_V1_Platform.nativeInstance, Rampart_Inventory_V1_Hypervisor.unspecified),
            (.containerInstance, .unspecified),
            (.virtual, .vmware),
            // Registration is allowed; backing up is what B2 refuses (BackupSupportMatrix).
            (.virtual, .kvm),
        ])
    func kindsAccepted(_ platform: Rampart_Inventory_V1_Platform, _ hypervisor: Rampart_Inventory_V1_Hypervisor) throws
    {
        var device = goodDevice()
        device.platform = platform
        device.hypervisor = hypervisor
        try InventoryRules.validateDevice(device)
    }

    @Test(
        "limits are inclusive: 64-character name and serial, 16 network modules, 1024 interfaces, no interfaces at all")
    func limitsAccepted() throws {
        var device = goodDevice(name: String(repeating: "n", count: 64))
        device.serial = String(repeating: "S", count: 64)
        device.model = String(repeating: "M", count: 64)
        device.networkModules = 16
        device.interfaces = [group(String(repeating: "t", count: 32), 1024), group("1GbE", 1)]
        device.managerID = String(repeating: "m", count: 128)
        try InventoryRules.validateDevice(device)
        device.interfaces = []
        device.networkModules = 0
        try InventoryRules.validateDevice(device)
    }

    @Test("each bad field is refused with INVALID_ARGUMENT and a message naming that field", arguments: badFields)
    func badFieldRefused(_ bad: BadField) {
        var device = goodDevice()
        bad.change(&device)
        guard let error = rpcError({ try InventoryRules.validateDevice(device) }) else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains(bad.naming), "message was: \(error.message)")
    }
}

@Suite("Inventory: names")
struct NameValidationTests {
    @Test(
        "names of letters, digits, '.', '_' and '-' starting with a letter or digit are accepted",
        arguments: ["fw1", "FW-01.lab_a", "1fw", "a", "edge.paris-2", "0f8fad5bd9cb469fa16570867728950e"])
    func accepted(_ name: String) throws {
        try InventoryRules.validateName(name, what: "device")
    }

    @Test(
        "a name that parses as a UUID is refused, whatever its case, so names and ids cannot be confused",
        arguments: ["6F9619FF-8B86-D011-B42D-00C04FC964FF", "6f9619ff-8b86-d011-b42d-00c04fc964ff"])
    func uuidRefused(_ name: String) {
        guard let error = rpcError({ try InventoryRules.validateName(name, what: "cluster") }) else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("cluster name '\(name)'"))
        #expect(error.message.contains("UUID"))
    }

    @Test(
        "names that are empty, too long, or hold other characters are refused naming what was named",
        arguments: ["", String(repeating: "x", count: 65), "_fw", "fw 1", "fw\t1", "fw;drop", "ﬁrewall", "fw\u{0}"])
    func refused(_ name: String) {
        guard let error = rpcError({ try InventoryRules.validateName(name, what: "HA pair") }) else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("HA pair name"))
    }
}

@Suite("Inventory: software versions (B5 notes version and patch apart)")
struct VersionValidationTests {
    @Test(
        "versions of 2 to 4 dot-separated numbers are accepted",
        arguments: ["7.4", "7.4.1", "7.4.1.2", "10.0.0", "6.7.0.99999"])
    func accepted(_ version: String) throws {
        try InventoryRules.validateVersion(version)
    }

    @Test(
        "other versions are refused with INVALID_ARGUMENT naming the version",
        arguments: [
            "", "7", "7.4.1.2.3", "7..1", "7.4.", ".7.4", "v7.4", "7.4.1-beta", "7.4.123456", "7.4 .1", "7.4.1 patch 2",
            "-7.4", "٧.٤", "7.½", "7.4.١", "7.Ⅻ",
        ])
    func refused(_ version: String) {
        guard let error = rpcError({ try InventoryRules.validateVersion(version) }) else { return }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("software version '\(version)'"))
    }

    @Test("describe shows the patch level only when there is one")
    func describeVersion() {
        var software = Rampart_Inventory_V1_SoftwareVersion()
        software.version = "7.4.1"
        #expect(InventoryRules.describe(software) == "7.4.1")
        software.patch = 3
        #expect(InventoryRules.describe(software) == "7.4.1 patch 3")
    }
}

@Suite("Inventory: management IP addresses")
struct IPAddressTests {
    @Test(
        "IPv4 and IPv6 addresses are accepted",
        arguments: [
            "192.0.2.1", "0.0.0.0", "255.255.255.255", "10.1.2.3", "2001:db8::1", "::1", "::", "fe80::1",
            "::ffff:192.0.2.1", "2001:0db8:0000:0000:0000:ff00:0042:8329",
        ])
    func accepted(_ address: String) {
        #expect(InventoryRules.isIPAddress(address))
    }

    @Test(
        "anything else is refused",
        arguments: [
            "", "256.1.1.1", "192.0.2", "192.0.2.1.5", "192.0.2.1/24", " 192.0.2.1", "192.0.2.1 ", "2001:db8:::1",
            "2001:db8::1::2", "fe80::1%eth0", "localhost", "[::1]", "1.2.3.-4", "12345::", "gggg::1",
        ])
    func refused(_ address: String) {
        #expect(!InventoryRules.isIPAddress(address))
    }
}
