import Foundation
import RampartRPC
import RampartProto

#if canImport(Glibc)
import Glibc
#endif

/// The inventory's rules about what may be registered, as pure functions over protobuf values.
/// Each refusal is an `RPCError` with the code a caller can act on and a message naming what is wrong.
public enum InventoryRules {
    /// Longest device, pair or cluster name.
    public static let maxNameLength = 64
    /// Most nodes a cluster may have.
    public static let maxClusterNodes = 16

    /// Checks a name: 1...64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit.
    public static func validateName(_ name: String, what: String) throws {
        guard !name.isEmpty else { throw RPCError.invalidArgument("\(what) name is empty") }
        guard name.count <= maxNameLength else {
            throw RPCError.invalidArgument("\(what) name '\(name)' is longer than \(maxNameLength) characters")
        }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-"))
        guard name.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) }),
            let first = name.unicodeScalars.first, CharacterSet.alphanumerics.contains(first)
        else {
            throw RPCError.invalidArgument(
                "\(what) name '\(name)' may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit")
        }
        guard UUID(uuidString: name) == nil else {
            throw RPCError.invalidArgument("\(what) name '\(name)' looks like an id; choose a name that is not a UUID")
        }
    }

    /// Whether `serial` is 1 to 64 ASCII letters and digits.
    public static func isValidSerial(_ serial: String) -> Bool {
        !serial.isEmpty && serial.count <= 64
            && serial.unicodeScalars.allSatisfy { $0.isASCII && CharacterSet.alphanumerics.contains($0) }
    }

    /// Checks every field of a device to register (or its state after an update).
    public static func validateDevice(_ device: Rampart_Inventory_V1_Device) throws {
        try validateName(device.name, what: "device")
        guard isValidSerial(device.serial) else {
            throw RPCError.invalidArgument("serial '\(device.serial)' must be 1 to 64 letters and digits")
        }
        guard !device.model.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw RPCError.invalidArgument("model is missing (e.g. FPR-3120)")
        }
        guard device.model.count <= 64, !device.model.unicodeScalars.contains(where: CharacterSet.controlCharacters.contains)
        else {
            throw RPCError.invalidArgument("model must be at most 64 printable characters")
        }
        switch device.platform {
        case .unspecified, .UNRECOGNIZED:
            throw RPCError.invalidArgument("platform is missing: physical, native-instance, container-instance or virtual")
        case .virtual:
            if device.hypervisor == .unspecified {
                throw RPCError.invalidArgument("a virtual device needs its hypervisor (vmware, kvm, aws, ...)")
            }
        case .physical, .nativeInstance, .containerInstance:
            if device.hypervisor != .unspecified {
                throw RPCError.invalidArgument("only virtual devices have a hypervisor")
            }
        }
        try validateVersion(device.software.version)
        guard device.networkModules <= 16 else {
            throw RPCError.invalidArgument("\(device.networkModules) network modules is more than any model has (16)")
        }
        var seen = Set<String>()
        for group in device.interfaces {
            guard !group.type.isEmpty, group.type.count <= 32,
                !group.type.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) || $0 == " " })
            else {
                throw RPCError.invalidArgument("interface type '\(group.type)' must be 1 to 32 characters without spaces")
            }
            guard group.count > 0, group.count <= 1024 else {
                throw RPCError.invalidArgument("interface count for \(group.type) must be between 1 and 1024")
            }
            guard seen.insert(group.type).inserted else {
                throw RPCError.invalidArgument("interface type \(group.type) is listed twice")
            }
        }
        guard isIPAddress(device.managementIp) else {
            throw RPCError.invalidArgument("management IP '\(device.managementIp)' is not an IPv4 or IPv6 address")
        }
        guard !device.managerID.isEmpty else { throw RPCError.invalidArgument("manager id is missing") }
        guard device.managerID.count <= 128 else {
            throw RPCError.invalidArgument("manager id is longer than 128 characters")
        }
    }

    /// Checks a software version: 2 to 4 dot-separated numbers ("7.4.1"); the patch level is separate.
    public static func validateVersion(_ version: String) throws {
        let parts = version.split(separator: ".", omittingEmptySubsequences: false)
        guard (2...4).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.count <= 5 && $0.allSatisfy { ("0"..."9").contains($0) } })
        else {
            throw RPCError.invalidArgument("software version '\(version)' must look like 7.4.1 (the patch level is given apart)")
        }
    }

    /// Whether `text` is an IPv4 or IPv6 address.
    public static func isIPAddress(_ text: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, text, &buffer) == 1 || inet_pton(AF_INET6, text, &buffer) == 1
    }

    /// "7.4.1 patch 2", or "7.4.1" without a patch.
    public static func describe(_ software: Rampart_Inventory_V1_SoftwareVersion) -> String {
        software.patch == 0 ? software.version : "\(software.version) patch \(software.patch)"
    }

    /// Checks that devices may form one deployment (HA pair or cluster): distinct, same model,
    /// same software version and patch, same platform and hypervisor, none already in another.
    public static func validateMembers(_ devices: [Rampart_Inventory_V1_Device], forming what: String) throws {
        var ids = Set<String>()
        for device in devices where !ids.insert(device.id).inserted {
            throw RPCError.invalidArgument("device \(device.name) is named twice in the \(what)")
        }
        for device in devices {
            if !device.haPairID.isEmpty {
                throw RPCError.failedPrecondition("device \(device.name) is already in an HA pair; a device belongs to one HA pair or cluster at most")
            }
            if !device.clusterID.isEmpty {
                throw RPCError.failedPrecondition("device \(device.name) is already in a cluster; a device belongs to one HA pair or cluster at most")
            }
        }
        guard let first = devices.first else { return }
        for other in devices.dropFirst() {
            try requireSameKind(first, other, in: what)
        }
    }

    /// Refuses two members of one deployment that differ in model, version, patch or platform.
    public static func requireSameKind(
        _ first: Rampart_Inventory_V1_Device, _ other: Rampart_Inventory_V1_Device, in what: String
    ) throws {
        if first.model != other.model {
            throw RPCError.failedPrecondition(
                "the \(what) needs one model: \(first.name) is \(first.model), \(other.name) is \(other.model)")
        }
        if first.software != other.software {
            throw RPCError.failedPrecondition(
                "the \(what) needs one software version: \(first.name) runs \(describe(first.software)), \(other.name) runs \(describe(other.software))"
            )
        }
        if first.platform != other.platform || first.hypervisor != other.hypervisor {
            throw RPCError.failedPrecondition("the \(what) needs one platform: \(first.name) and \(other.name) differ")
        }
    }

    /// Checks the shape of a cluster: exactly one control node and 1...15 data nodes, all distinct.
    public static func validateClusterShape(control: String, data: [String]) throws {
        guard !control.isEmpty else {
            throw RPCError.invalidArgument("a cluster needs exactly one control node; none was given")
        }
        guard !data.isEmpty else {
            throw RPCError.invalidArgument("a cluster needs at least one data node besides its control node")
        }
        guard data.count + 1 <= maxClusterNodes else {
            throw RPCError.invalidArgument("a cluster has at most \(maxClusterNodes) nodes; \(data.count + 1) were given")
        }
        if data.contains(control) {
            throw RPCError.invalidArgument("a cluster needs exactly one control node: '\(control)' is also listed as a data node")
        }
        if let twice = data.first(where: { node in data.filter { $0 == node }.count > 1 }) {
            throw RPCError.invalidArgument("data node '\(twice)' is listed twice")
        }
    }
}

/// Rule B2: which devices can be backed up at all.
public enum BackupSupportMatrix {
    /// Whether `device` can be backed up, and why not when it cannot.
    public static func evaluate(_ device: Rampart_Inventory_V1_Device) -> (supported: Bool, reason: String) {
        switch device.platform {
        case .physical, .nativeInstance, .containerInstance:
            return (true, "")
        case .virtual where device.hypervisor == .vmware:
            return (true, "")
        case .virtual:
            let name = hypervisorName(device.hypervisor)
            return (
                false,
                "threat defense virtual on \(name) cannot be backed up: only VMware is supported (rule B2); "
                    + "after a replacement its configuration must be recreated by hand"
            )
        case .unspecified, .UNRECOGNIZED:
            return (false, "the device's platform is unknown")
        }
    }

    /// The hypervisor's usual name ("VMware", "KVM").
    public static func hypervisorName(_ hypervisor: Rampart_Inventory_V1_Hypervisor) -> String {
        switch hypervisor {
        case .vmware: "VMware"
        case .kvm: "KVM"
        case .hyperv: "Hyper-V"
        case .aws: "AWS"
        case .azure: "Azure"
        case .gcp: "Google Cloud"
        case .oci: "Oracle Cloud"
        case .openstack: "OpenStack"
        case .nutanix: "Nutanix"
        case .alibaba: "Alibaba Cloud"
        case .unspecified, .UNRECOGNIZED: "an unknown hypervisor"
        }
    }
}
