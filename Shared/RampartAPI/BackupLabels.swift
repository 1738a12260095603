import Foundation
import RampartProto

/// How the backup API's enum values are spelled: in tables, the database, events and the CLI.
extension Rampart_Backup_V1_TaskState {
    /// "pending", "running", "succeeded", ...
    public var label: String {
        switch self {
        case .pending: "pending"
        case .taskRunning: "running"
        case .taskSucceeded: "succeeded"
        case .taskPartiallySucceeded: "partially-succeeded"
        case .taskFailed: "failed"
        case .taskCancelled: "cancelled"
        case .refused: "refused"
        case .unspecified, .UNRECOGNIZED: ""
        }
    }

    /// The state named `label`.
    public init(label: String) {
        self = Self.allCases.first { $0.label == label && !label.isEmpty } ?? .unspecified
    }
}

extension Rampart_Backup_V1_JobState {
    /// "queued", "running", "succeeded", "partially-succeeded", "failed", "cancelled".
    public var label: String {
        switch self {
        case .queued: "queued"
        case .running: "running"
        case .succeeded: "succeeded"
        case .partiallySucceeded: "partially-succeeded"
        case .failed: "failed"
        case .cancelled: "cancelled"
        case .unspecified, .UNRECOGNIZED: ""
        }
    }

    /// The state named `label`.
    public init(label: String) {
        self = Self.allCases.first { $0.label == label && !label.isEmpty } ?? .unspecified
    }

    /// Whether the job is over.
    public var isFinished: Bool { [.succeeded, .partiallySucceeded, .failed, .cancelled].contains(self) }

    /// The event topic suffix ("partially_succeeded").
    public var topic: String { label.replacingOccurrences(of: "-", with: "_") }
}

extension Rampart_Backup_V1_TargetKind {
    /// "device", "ha-pair", "cluster", "all" ("" when unspecified).
    public var label: String {
        switch self {
        case .device: "device"
        case .haPair: "ha-pair"
        case .cluster: "cluster"
        case .allDevices: "all"
        case .unspecified, .UNRECOGNIZED: ""
        }
    }

    /// The kind named `label`.
    public init(label: String) {
        self = Self.allCases.first { $0.label == label } ?? .unspecified
    }
}
