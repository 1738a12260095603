import Foundation
import RampartBasics
import RampartProto

/// Backup objectives (docs/rules.md P16): how they are written and the range `SetBackupObjective` accepts.
extension BackupAPI {
    /// The installation's default objective: eight days, a little over a weekly schedule's period (B4's
    /// `weekly`), so one late run is not yet stale and one missed run is.
    public static let defaultObjectiveSeconds: Int64 = 8 * 86_400
    /// The longest objective accepted: a year and a day.
    public static let maximumObjectiveSeconds: Int64 = 366 * 86_400

    /// The seconds of an objective as operators write it ("8d", "36h", "1d12h", "90m", "45s"): from 1 s to
    /// ``maximumObjectiveSeconds``, else nil.
    public static func parseObjective(_ text: String) -> Int64? {
        guard let seconds = DurationText.seconds(text), seconds >= 1, seconds <= maximumObjectiveSeconds else { return nil }
        return seconds
    }
}

extension Rampart_Backup_V1_ObjectiveState {
    /// "ok", "stale", "never", "unsupported" ("" when unspecified): tables, events, JSON.
    public var label: String {
        switch self {
        case .ok: "ok"
        case .stale: "stale"
        case .never: "never"
        case .unsupported: "unsupported"
        case .unspecified, .UNRECOGNIZED: ""
        }
    }
}
