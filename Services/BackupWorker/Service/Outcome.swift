import RampartProto

/// Pure rules for what a backup run amounts to.
public enum BackupOutcome {
    /// What a cluster backup keeps (rule B10), from each node's export result, control node first:
    /// the control node failed → the whole cluster backup is cancelled and nothing is kept; a data
    /// node failed → the other nodes are kept and the task is partially succeeded.
    public enum Cluster: Equatable, Sendable {
        case succeeded(keep: [String])
        case partiallySucceeded(keep: [String], failed: [String])
        case cancelled(reason: String)
    }

    /// Decides a cluster backup from `control` and `data` results (device name → succeeded?).
    public static func cluster(control: (name: String, ok: Bool), data: [(name: String, ok: Bool)]) -> Cluster {
        guard control.ok else {
            return .cancelled(reason: "control node \(control.name) failed to back up: the cluster backup is cancelled and nothing is kept (rule B10)")
        }
        let failed = data.filter { !$0.ok }.map(\.name)
        let keep = [control.name] + data.filter(\.ok).map(\.name)
        return failed.isEmpty ? .succeeded(keep: keep) : .partiallySucceeded(keep: keep, failed: failed)
    }

    /// The state of a job whose tasks are all finished: every task succeeded → succeeded; something
    /// stored but not everything → partially succeeded; nothing stored → cancelled when an operator
    /// cancelled the job, else failed (a cluster cancelled by rule B10 is a failure of the job).
    public static func job(_ tasks: [Rampart_Backup_V1_TaskState], cancelRequested: Bool) -> Rampart_Backup_V1_JobState {
        if !tasks.isEmpty && tasks.allSatisfy({ $0 == .taskSucceeded }) { return .succeeded }
        if tasks.contains(where: { $0 == .taskSucceeded || $0 == .taskPartiallySucceeded }) { return .partiallySucceeded }
        return cancelRequested ? .cancelled : .failed
    }

    /// Whether a task state is final.
    public static func isFinished(_ state: Rampart_Backup_V1_TaskState) -> Bool {
        switch state {
        case .taskSucceeded, .taskPartiallySucceeded, .taskFailed, .taskCancelled, .refused: true
        default: false
        }
    }
}
