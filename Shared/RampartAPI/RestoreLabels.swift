import RampartProto

/// How the restore API's lease states are spelled: in tables, the database, events and the CLI.
extension Rampart_Restore_V1_LeaseState {
    /// "active", "rejoined", "expired", "released", "failed" (as stored and shown).
    public var label: String {
        switch self {
        case .active: "active"
        case .rejoined: "rejoined"
        case .expired: "expired"
        case .released: "released"
        case .failed: "failed"
        case .unspecified, .UNRECOGNIZED: "unknown"
        }
    }
}
