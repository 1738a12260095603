import RampartProto

/// What a caller may do (docs/security.md): carried by its authenticated key, checked by each service
/// for each method.
public enum BusRole: String, CaseIterable, Sendable, Codable, Comparable {
    /// Everything.
    case admin
    /// Backups, links, schedules, restores, deploys; no key or inventory administration.
    case `operator`
    /// Read only.
    case viewer
    /// A device agent: only its own device-facing calls.
    case device
    /// A Rampart service calling another.
    case service

    public static func < (lhs: BusRole, rhs: BusRole) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The role a proto `access` option names (`ROLE_ADMIN` → `.admin`); nil for `ROLE_UNSPECIFIED`.
    public init?(_ role: Rampart_Bus_V1_Role) {
        switch role {
        case .admin: self = .admin
        case .operator: self = .operator
        case .viewer: self = .viewer
        case .device: self = .device
        case .service: self = .service
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }
}
