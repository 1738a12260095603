import Foundation
import RampartAPI
import RampartBasics
import RampartInventory
import RampartProto

/// Rule P16: where a device's last good backup stands against its backup objective, and when that
/// changes enough to be said (`backup.device.stale`, `backup.device.fresh`). Pure: the caller passes
/// what it read and the time from its clock.
public enum BackupObjective {
    /// The installation's default objective (``BackupAPI/defaultObjectiveSeconds``: 8 days).
    public static let defaultSeconds = BackupAPI.defaultObjectiveSeconds

    /// The state of a device whose backup `supported` says (B2), whose last good backup was at `lastGood`
    /// (nil: none), registered at `registered` (nil: unknown), under `objectiveSeconds`, at `now`.
    ///
    /// - unsupported: never anything else (a device that cannot be backed up is never stale);
    /// - with a last good backup: `ok` while its age is at most the objective, `stale` once older;
    /// - without one: `never` for an objective after its registration, then `stale` (a device nobody
    ///   managed to back up since it was registered is as exposed as one whose backups stopped).
    public static func state(
        supported: Bool, lastGood: Date?, registered: Date?, objectiveSeconds: Int64, now: Date
    ) -> Rampart_Backup_V1_ObjectiveState {
        guard supported else { return .unsupported }
        let objective = TimeInterval(objectiveSeconds)
        if let lastGood {
            return now.timeIntervalSince(lastGood) > objective ? .stale : .ok
        }
        if let registered, now.timeIntervalSince(registered) > objective { return .stale }
        return .never
    }

    /// What a check says about a device that was `wasStale` (as recorded) and is `now` in state `state`:
    /// `.stale` when it crossed its objective, `.fresh` when it came back under it (`ok`, or `never` again
    /// when its objective was raised), nil when nothing changed or nothing is to be said (an unsupported
    /// device, or one never backed up still in its first objective).
    public static func crossing(wasStale: Bool, state: Rampart_Backup_V1_ObjectiveState) -> Crossing? {
        switch state {
        case .stale: wasStale ? nil : .stale
        // `never` after `stale`: a device never backed up whose objective was raised past its age.
        case .ok, .never: wasStale ? .fresh : nil
        case .unsupported, .unspecified, .UNRECOGNIZED: nil
        }
    }

    /// A crossing said by a check, for its device.
    public struct Said: Sendable, Equatable {
        /// The device's name.
        public var device: String
        /// What was said.
        public var crossing: Crossing
    }

    /// A change worth an event.
    public enum Crossing: String, Sendable, Equatable {
        /// `backup.device.stale`: the device's last good backup became older than its objective.
        case stale
        /// `backup.device.fresh`: a good backup brought it back under its objective.
        case fresh

        /// The event's topic.
        public var topic: String { "backup.device.\(rawValue)" }
    }
}
