import RampartProto
import Testing

@testable import BackupWorkerService

@Suite("Backup outcomes: clusters (B10) and jobs")
struct OutcomeTests {
    @Test("B10: every node backed up → succeeded, control node first")
    func clusterSucceeded() {
        #expect(
            BackupOutcome.cluster(control: ("n1", true), data: [("n2", true), ("n3", true)])
                == .succeeded(keep: ["n1", "n2", "n3"]))
    }

    @Test("B10: a data node fails → the other nodes are kept, partially succeeded")
    func dataNodeFails() {
        #expect(
            BackupOutcome.cluster(control: ("n1", true), data: [("n2", false), ("n3", true)])
                == .partiallySucceeded(keep: ["n1", "n3"], failed: ["n2"]))
    }

    @Test("B10: the control node fails → the cluster backup is cancelled, nothing kept, whatever the data nodes did")
    func controlNodeFails() {
        for data in [[("n2", true), ("n3", true)], [("n2", false)], []] as [[(String, Bool)]] {
            guard case .cancelled(let reason) = BackupOutcome.cluster(control: ("n1", false), data: data.map { ($0.0, $0.1) })
            else {
                Issue.record("expected cancelled")
                continue
            }
            #expect(reason.contains("n1") && reason.contains("B10"))
        }
    }

    @Test(
        "Jobs: all succeeded → succeeded; some stored → partially; nothing stored → failed, or cancelled when asked",
        arguments: [
            ([.taskSucceeded, .taskSucceeded], false, Rampart_Backup_V1_JobState.succeeded),
            ([.taskSucceeded, .refused], false, .partiallySucceeded),
            ([.taskPartiallySucceeded], false, .partiallySucceeded),
            ([.taskSucceeded, .taskFailed], false, .partiallySucceeded),
            ([.taskFailed, .refused], false, .failed),
            ([.taskCancelled], false, .failed),
            ([.taskCancelled, .taskCancelled], true, .cancelled),
            ([.taskSucceeded, .taskCancelled], true, .partiallySucceeded),
            ([.refused], false, .failed),
        ] as [([Rampart_Backup_V1_TaskState], Bool, Rampart_Backup_V1_JobState)])
    func jobOutcome(_ tasks: [Rampart_Backup_V1_TaskState], _ cancelRequested: Bool, _ expected: Rampart_Backup_V1_JobState) {
        #expect(BackupOutcome.job(tasks, cancelRequested: cancelRequested) == expected)
    }

    @Test("State labels round-trip, and finished states are the final ones")
    func labels() {
        for state in Rampart_Backup_V1_TaskState.allCases where state != .unspecified {
            #expect(Rampart_Backup_V1_TaskState(label: state.label) == state)
        }
        for state in Rampart_Backup_V1_JobState.allCases where state != .unspecified {
            #expect(Rampart_Backup_V1_JobState(label: state.label) == state)
        }
        #expect(!BackupOutcome.isFinished(.pending) && !BackupOutcome.isFinished(.taskRunning))
        #expect(BackupOutcome.isFinished(.refused) && BackupOutcome.isFinished(.taskPartiallySucceeded))
        #expect(Rampart_Backup_V1_JobState.partiallySucceeded.topic == "partially_succeeded")
    }
}
