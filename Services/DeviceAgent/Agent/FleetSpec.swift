import Foundation

/// A fleet of simulated devices for `device-agent fleet` (JSON, usually `DIR/fleet.json`):
///
/// ```json
/// {"configSize": "64KiB",
///  "devices": [{"name": "fw-001", "serial": "JAD0000001", "model": "FPR-3120", "platform": "physical",
///               "software": "7.4.1", "patch": 2, "managementIp": "10.1.0.1",
///               "interfaces": {"1GbE-RJ45": 8}, "networkModules": 1, "failExport": false, "slowExportMs": 0}],
///  "haPairs": [{"name": "ha-01", "primary": "fw-ha01-a", "secondary": "fw-ha01-b"}],
///  "clusters": [{"name": "cl-01", "control": "cl01-n1", "data": ["cl01-n2", "cl01-n3"]}]}
/// ```
public struct FleetSpec: Codable, Sendable, Equatable {
    /// One device of the fleet.
    public struct Device: Codable, Sendable, Equatable {
        public var name: String
        public var serial: String
        public var model: String
        public var platform: String
        public var hypervisor: String?
        public var software: String
        public var patch: Int?
        public var managementIp: String
        /// Physical interfaces: type → count.
        public var interfaces: [String: Int]?
        public var networkModules: Int?
        /// StartExport fails with INTERNAL (B10 tests).
        public var failExport: Bool?
        /// Each ReadExport sleeps this long.
        public var slowExportMs: Int?
        /// Seed of the generated configuration (default: from name and serial).
        public var seed: UInt64?

        /// A device entry.
        public init(
            name: String, serial: String, model: String, platform: String, hypervisor: String? = nil, software: String,
            patch: Int? = nil, managementIp: String, interfaces: [String: Int]? = nil, networkModules: Int? = nil,
            failExport: Bool? = nil, slowExportMs: Int? = nil, seed: UInt64? = nil
        ) {
            self.name = name
            self.serial = serial
            self.model = model
            self.platform = platform
            self.hypervisor = hypervisor
            self.software = software
            self.patch = patch
            self.managementIp = managementIp
            self.interfaces = interfaces
            self.networkModules = networkModules
            self.failExport = failExport
            self.slowExportMs = slowExportMs
            self.seed = seed
        }

        /// The device's facts, its configuration sized `configSize`.
        public func facts(configSize: Int) -> DeviceProfile {
            DeviceProfile(
                name: name, serial: serial, model: model, platform: platform, hypervisor: hypervisor ?? "", software: software,
                patch: patch ?? 0, networkModules: networkModules ?? 0,
                interfaces: (interfaces ?? [:]).sorted { $0.key < $1.key }.map { .init(type: $0.key, count: $0.value) },
                managementIp: managementIp, configSize: configSize, seed: seed)
        }
    }

    /// An HA pair to create in inventory.
    public struct HaPair: Codable, Sendable, Equatable {
        public var name: String
        public var primary: String
        public var secondary: String

        /// A pair of two devices (by name).
        public init(name: String, primary: String, secondary: String) {
            self.name = name
            self.primary = primary
            self.secondary = secondary
        }
    }

    /// A cluster to create in inventory.
    public struct Cluster: Codable, Sendable, Equatable {
        public var name: String
        public var control: String
        public var data: [String]

        /// A cluster of a control node and data nodes (by name).
        public init(name: String, control: String, data: [String]) {
            self.name = name
            self.control = control
            self.data = data
        }
    }

    /// Size of each device's configuration ("64KiB", "1MiB"; default 64 KiB).
    public var configSize: String?
    public var devices: [Device]
    public var haPairs: [HaPair]?
    public var clusters: [Cluster]?

    /// A fleet.
    public init(configSize: String? = nil, devices: [Device], haPairs: [HaPair] = [], clusters: [Cluster] = []) {
        self.configSize = configSize
        self.devices = devices
        self.haPairs = haPairs
        self.clusters = clusters
    }

    /// The configuration size in bytes.
    public func configBytes() throws -> Int {
        guard let text = configSize else { return DeviceProfile.defaultConfigSize }
        guard let bytes = ByteSize.parse(text) else {
            throw AgentError("configSize '\(text)' is not a size (e.g. 65536, 64KiB, 1MiB)")
        }
        return bytes
    }

    /// Reads a spec file.
    public static func load(_ path: String) throws -> FleetSpec {
        guard let data = FileManager.default.contents(atPath: path) else { throw AgentError("cannot read \(path)") }
        do {
            return try JSONDecoder().decode(FleetSpec.self, from: data)
        } catch {
            throw AgentError("\(path) is not a fleet spec: \(error)")
        }
    }

    /// The spec as written to a file: pretty, sorted keys.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Throws a message naming the first problem: duplicate names or serials, invalid facts, pairs or
    /// clusters naming devices not in the fleet or a device twice.
    public func validate() throws {
        let size = try configBytes()
        var names = Set<String>()
        var serials = Set<String>()
        for device in devices {
            guard names.insert(device.name).inserted else { throw AgentError("device \(device.name) is listed twice") }
            guard serials.insert(device.serial).inserted else { throw AgentError("serial \(device.serial) is listed twice") }
            do {
                try device.facts(configSize: size).validate()
            } catch {
                throw AgentError("device \(device.name): \(error)")
            }
        }
        var members = Set<String>()
        let groups = (haPairs ?? []).map { ($0.name, [$0.primary, $0.secondary]) }
            + (clusters ?? []).map { ($0.name, [$0.control] + $0.data) }
        for (group, nodes) in groups {
            for node in nodes {
                guard names.contains(node) else { throw AgentError("\(group) names \(node), which is not a device of the fleet") }
                guard members.insert(node).inserted else { throw AgentError("device \(node) is in more than one HA pair or cluster") }
            }
        }
    }

    /// A realistic fleet: `standalone` devices (every fifth a VMware virtual), `haPairs` pairs of physical
    /// appliances, `clusters` clusters of `clusterNodes` nodes, and `kvm` virtual devices on KVM (not
    /// supported for backup, B2). Names, serials and IPs are unique and stable for the same counts.
    public static func generate(
        standalone: Int, haPairs: Int, clusters: Int, clusterNodes: Int = 3, kvm: Int = 0, configSize: String = "64KiB"
    ) -> FleetSpec {
        var devices: [Device] = []
        var pairs: [HaPair] = []
        var groups: [Cluster] = []
        var serial = 0
        func nextSerial(_ prefix: String) -> String {
            serial += 1
            return prefix + String(format: "%07d", serial)
        }
        func ip(_ index: Int) -> String { "10.\(100 + index / 62_000 % 100).\(index / 250 % 250).\(index % 250 + 2)" }
        let physical: [(model: String, interfaces: [String: Int], modules: Int)] = [
            ("FPR-1150", ["1GbE-RJ45": 8, "10GbE-SFP+": 2], 0), ("FPR-2130", ["1GbE-RJ45": 12, "10GbE-SFP+": 4], 1),
            ("FPR-3120", ["1GbE-RJ45": 8, "10GbE-SFP+": 8], 1), ("FPR-4145", ["10GbE-SFP+": 8, "40GbE-QSFP": 2], 2),
        ]
        let versions: [(String, Int)] = [("7.4.1", 0), ("7.4.1", 2), ("7.2.5", 1), ("7.6.0", 0)]
        for index in 0..<standalone {
            let version = versions[index % versions.count]
            if index % 5 == 4 {
                devices.append(
                    Device(
                        name: String(format: "fw-std-%03d", index + 1), serial: nextSerial("9A"), model: "FTDv", platform: "virtual",
                        hypervisor: "vmware", software: version.0, patch: version.1, managementIp: ip(devices.count),
                        interfaces: ["vNIC": 10]))
            } else {
                let hardware = physical[index % physical.count]
                devices.append(
                    Device(
                        name: String(format: "fw-std-%03d", index + 1), serial: nextSerial("JAD"), model: hardware.model,
                        platform: "physical", software: version.0, patch: version.1, managementIp: ip(devices.count),
                        interfaces: hardware.interfaces, networkModules: hardware.modules))
            }
        }
        for index in 0..<haPairs {
            let hardware = physical[(index + 2) % physical.count]
            let name = String(format: "ha-%02d", index + 1)
            for suffix in ["a", "b"] {
                devices.append(
                    Device(
                        name: String(format: "fw-ha%02d-", index + 1) + suffix, serial: nextSerial("JMX"), model: hardware.model,
                        platform: "physical", software: "7.4.1", patch: 2, managementIp: ip(devices.count),
                        interfaces: hardware.interfaces, networkModules: hardware.modules))
            }
            pairs.append(HaPair(name: name, primary: devices[devices.count - 2].name, secondary: devices[devices.count - 1].name))
        }
        for index in 0..<clusters {
            var nodes: [String] = []
            let platform = index % 2 == 0 ? "native-instance" : "physical"
            for node in 0..<max(1, clusterNodes) {
                let name = String(format: "cl%02d-n%d", index + 1, node + 1)
                devices.append(
                    Device(
                        name: name, serial: nextSerial("FLM"), model: platform == "physical" ? "FPR-4145" : "FPR-9300-SM-56",
                        platform: platform, software: "7.4.1", patch: 1, managementIp: ip(devices.count),
                        interfaces: ["10GbE-SFP+": 8, "40GbE-QSFP": 4], networkModules: 2))
                nodes.append(name)
            }
            groups.append(Cluster(name: String(format: "cl-%02d", index + 1), control: nodes[0], data: Array(nodes.dropFirst())))
        }
        for index in 0..<kvm {
            devices.append(
                Device(
                    name: String(format: "fw-kvm-%03d", index + 1), serial: nextSerial("9K"), model: "FTDv", platform: "virtual",
                    hypervisor: "kvm", software: "7.4.1", managementIp: ip(devices.count), interfaces: ["vNIC": 8]))
        }
        return FleetSpec(configSize: configSize, devices: devices, haPairs: pairs, clusters: groups)
    }
}
