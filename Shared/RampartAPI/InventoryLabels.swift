import RampartProto

/// How the inventory API's enum values are spelled: in tables, the database, events and the CLI.
extension Rampart_Inventory_V1_Platform {
    /// "physical", "native-instance", "container-instance", "virtual".
    public var label: String {
        switch self {
        case .physical: "physical"
        case .nativeInstance: "native-instance"
        case .containerInstance: "container-instance"
        case .virtual: "virtual"
        case .unspecified, .UNRECOGNIZED: ""
        }
    }

    /// The platform named `label`.
    public init?(label: String) {
        guard let match = Self.allCases.first(where: { $0.label == label && !label.isEmpty }) else { return nil }
        self = match
    }
}

extension Rampart_Inventory_V1_Hypervisor {
    /// "vmware", "kvm", ... ("" when unspecified).
    public var label: String {
        switch self {
        case .unspecified, .UNRECOGNIZED: ""
        case .vmware: "vmware"
        case .kvm: "kvm"
        case .hyperv: "hyperv"
        case .aws: "aws"
        case .azure: "azure"
        case .gcp: "gcp"
        case .oci: "oci"
        case .openstack: "openstack"
        case .nutanix: "nutanix"
        case .alibaba: "alibaba"
        }
    }

    /// The hypervisor named `label` ("" is unspecified).
    public init?(label: String) {
        guard let match = Self.allCases.first(where: { $0.label == label }) else { return nil }
        self = match
    }
}

extension Rampart_Inventory_V1_Role {
    /// "standalone", "ha-primary", "ha-secondary", "cluster-control", "cluster-data".
    public var label: String {
        switch self {
        case .standalone: "standalone"
        case .haPrimary: "ha-primary"
        case .haSecondary: "ha-secondary"
        case .clusterControl: "cluster-control"
        case .clusterData: "cluster-data"
        case .unspecified, .UNRECOGNIZED: ""
        }
    }
}

extension Rampart_Inventory_V1_SyncState {
    /// "active", "suspended" or "resume-needed".
    public var label: String {
        switch self {
        case .active: "active"
        case .suspended: "suspended"
        case .resumeNeeded: "resume-needed"
        case .unspecified, .UNRECOGNIZED: ""
        }
    }

    /// The state named `label`.
    public init?(label: String) {
        switch label {
        case "active": self = .active
        case "resume-needed": self = .resumeNeeded
        case "suspended": self = .suspended
        default: return nil
        }
    }
}
