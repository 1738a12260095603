import RampartProto

/// How the storage API's enum values are spelled: in tables, JSON and the CLI.
extension Rampart_Storage_V1_FileChange {
    /// "added", "removed", "changed".
    public var label: String {
        switch self {
        case .added: "added"
        case .removed: "removed"
        case .changed: "changed"
        case .unspecified, .UNRECOGNIZED: ""
        }
    }
}
