import Foundation
import RampartArchive
import RampartBus
import RampartInventory
import RampartProto
import RampartRPC

/// A simulated device's hardware and software facts (`facts.json` in its folder): what it tells
/// inventory when it registers, what Describe answers and what a backup's manifest records. The part of
/// them a device reports to the restore coordinator is `Rampart_Restore_V1_DeviceFacts`
/// (`RestoreSession.leaseFacts`).
public struct DeviceProfile: Codable, Sendable, Equatable {
    /// Physical interfaces of one type.
    public struct InterfaceGroup: Codable, Sendable, Equatable {
        /// e.g. "1GbE-RJ45".
        public var type: String
        /// How many.
        public var count: Int

        /// `count` interfaces of `type`.
        public init(type: String, count: Int) {
            self.type = type
            self.count = count
        }
    }

    /// Unique device name.
    public var name: String
    /// Unique serial number (letters and digits).
    public var serial: String
    /// Hardware model ("FPR-3120", "FTDv").
    public var model: String
    /// "physical", "native-instance", "container-instance" or "virtual".
    public var platform: String
    /// For virtual devices: "vmware", "kvm", ...; else "".
    public var hypervisor: String
    /// Software version without patch ("7.4.1").
    public var software: String
    /// Patch level (0 = none).
    public var patch: Int
    /// Network modules installed.
    public var networkModules: Int
    /// Physical interfaces by type.
    public var interfaces: [InterfaceGroup]
    /// Management IP address.
    public var managementIp: String
    /// Approximate size of the generated configuration tree, bytes.
    public var configSize: Int
    /// Seed of the generated configuration.
    public var seed: UInt64

    /// Facts of one device.
    public init(
        name: String, serial: String, model: String, platform: String, hypervisor: String = "", software: String,
        patch: Int = 0, networkModules: Int = 0, interfaces: [InterfaceGroup] = [], managementIp: String,
        configSize: Int = DeviceProfile.defaultConfigSize, seed: UInt64? = nil
    ) {
        self.name = name
        self.serial = serial
        self.model = model
        self.platform = platform
        self.hypervisor = hypervisor
        self.software = software
        self.patch = patch
        self.networkModules = networkModules
        self.interfaces = interfaces
        self.managementIp = managementIp
        self.configSize = configSize
        self.seed = seed ?? DeviceProfile.defaultSeed(name: name, serial: serial)
    }

    /// 64 KiB.
    public static let defaultConfigSize = 64 * 1024
    /// Largest configuration tree `init` generates (256 MiB).
    public static let maxConfigSize = 256 << 20

    /// The seed used when none is given: a hash (FNV-1a) of name and serial, so re-creating a device gives the same tree.
    public static func defaultSeed(name: String, serial: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (name + "\u{0}" + serial).utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return hash
    }

    /// The facts as an inventory device (no id, role or presence).
    public var inventoryDevice: Rampart_Inventory_V1_Device {
        var device = Rampart_Inventory_V1_Device()
        device.name = name
        device.serial = serial
        device.model = model
        device.platform = Rampart_Inventory_V1_Platform(label: platform) ?? .unspecified
        device.hypervisor = Rampart_Inventory_V1_Hypervisor(label: hypervisor) ?? .unspecified
        device.software.version = software
        device.software.patch = UInt32(clamping: patch)
        device.networkModules = UInt32(clamping: networkModules)
        device.interfaces = interfaces.map {
            var group = Rampart_Inventory_V1_InterfaceGroup()
            group.type = $0.type
            group.count = UInt32(clamping: $0.count)
            return group
        }
        device.managementIp = managementIp
        return device
    }

    /// Throws a message for people when the facts could not be registered (inventory's own rules) or
    /// the configuration size is out of range.
    public func validate() throws {
        guard Rampart_Inventory_V1_Platform(label: platform) != nil else {
            throw AgentError("unknown platform '\(platform)': physical, native-instance, container-instance or virtual")
        }
        guard Rampart_Inventory_V1_Hypervisor(label: hypervisor) != nil else {
            throw AgentError("unknown hypervisor '\(hypervisor)' (vmware, kvm, hyperv, aws, azure, gcp, oci, openstack, nutanix, alibaba)")
        }
        guard patch >= 0, networkModules >= 0, interfaces.allSatisfy({ $0.count > 0 && !$0.type.isEmpty }) else {
            throw AgentError("patch, network modules and interface counts must not be negative; interface types not empty")
        }
        guard (1024...Self.maxConfigSize).contains(configSize) else {
            throw AgentError("config size must be between 1 KiB and 256 MiB")
        }
        var device = inventoryDevice
        device.managerID = "validation"  // the manager is chosen when registering
        do {
            try InventoryRules.validateDevice(device)
        } catch let error as RPCError {
            throw AgentError(error.message)
        }
    }
}

/// A refusal of the agent, for people (exit status 1 with this message).
public struct AgentError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public var description: String

    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

/// Byte sizes as people write them: "65536", "64KiB", "1MiB", "512K", "2MB".
public enum ByteSize {
    /// The number of bytes `text` means, or nil. K/KiB/M/MiB/G/GiB are binary; KB/MB/GB decimal.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber }
        guard !digits.isEmpty, let value = Int(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        let multiplier: Int
        switch unit {
        case "", "b": multiplier = 1
        case "k", "kib": multiplier = 1 << 10
        case "m", "mib": multiplier = 1 << 20
        case "g", "gib": multiplier = 1 << 30
        case "kb": multiplier = 1000
        case "mb": multiplier = 1_000_000
        case "gb": multiplier = 1_000_000_000
        default: return nil
        }
        let (result, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : result
    }

    /// "64 KiB", "1.5 MiB" for people.
    public static func describe(_ bytes: Int) -> String {
        if bytes >= 1 << 20 { return String(format: "%.1f MiB", Double(bytes) / Double(1 << 20)) }
        if bytes >= 1 << 10 { return String(format: "%.1f KiB", Double(bytes) / Double(1 << 10)) }
        return "\(bytes) B"
    }
}

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same configuration.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> Data {
        var data = Data(capacity: count + 8)
        while data.count < count {
            withUnsafeBytes(of: next()) { data.append(contentsOf: $0) }
        }
        return data.prefix(count)
    }

    mutating func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}
