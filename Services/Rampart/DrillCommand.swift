import ArgumentParser
import Foundation
import RampartAPI
import RampartBus
import RampartProto

/// `rampart drill TARGET…`: restore drills (P18), followed live until they end.
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Restore each target's latest good backup onto a throwaway replacement and check it would restore.",
        discussion: """
            TARGET is a device (an HA peer or a cluster node alone too), pair:NAME, cluster:NAME, or 'all'. Each \
            device's latest good backup is restored by a backup worker onto a throwaway simulated replacement with \
            the same hardware facts and software version, never registered and never on the bus, through the \
            device's own restore code; every pre-restore check, the archive's hashes, the restored configuration \
            tree, the VPN configuration removed (R10) and the keys re-encrypted (R11) are checked. A backup that \
            fails its drill is no longer its device's last good backup (P18). Follows the job unless --no-wait: \
            exit 0 every backup restorable, 7 some not, 8 none (or nothing to drill), 9 cancelled. docs/drills.md.
            """)
    @Argument(help: "What to drill.") var targets: [String]
    @Flag(name: .customLong("no-wait"), help: "Queue the drill job and print it; do not follow it.") var noWait = false
    @Option(help: "Reuse this key to make a retried request return the same job.") var idempotencyKey: String?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard !targets.isEmpty else { throw ValidationError("name at least one target") }
    }

    func run() async throws {
        var request = Rampart_Backup_V1_StartDrillRequest()
        request.targets = try targets.map(parseTarget)
        request.idempotencyKey = idempotencyKey ?? UUID().uuidString
        let job: Rampart_Backup_V1_Job = try await options.withClient { client in
            let response: Rampart_Backup_V1_JobResponse = try await options.call(
                client, BackupAPI.startDrill, request, idempotent: true)
            guard !noWait else { return response.job }
            return try await follow(response.job, client: client, options: options)
        }
        if options.output == .json {
            try printJSON(job)
        } else if noWait {
            printJob(job)
        } else {
            for task in job.tasks {
                for drill in task.drills { print(drillLine(drill)) }
            }
        }
        if !noWait { throw ExitCode(jobExitCode(job.state)) }
    }
}

/// `rampart drills list`: drill results, newest first.
struct DrillsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drills", abstract: "Restore drill results (P18).", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drill results, newest first.")
        @Option(help: "Only this device (name or id).") var device: String?
        @Option(help: "Only this backup.") var backup: String?
        @Option(help: "Only this job.") var job: String?
        @Option(help: "How many.") var limit: UInt32 = 50
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_ListDrillsRequest()
            request.device = device ?? ""
            request.backupID = backup ?? ""
            request.jobID = job ?? ""
            request.limit = limit
            let response: Rampart_Backup_V1_ListDrillsResponse = try await options.withClient {
                try await options.call($0, BackupAPI.listDrills, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            var table = Table("DEVICE", "FILE", "RESULT", "DRILLED", "TIME", "BACKUP")
            for drill in response.drills {
                table.add(
                    drill.deviceName, drill.fileName, drill.passed ? "restorable" : "not restorable: \(drill.reason)",
                    formatTime(drill.drilledUnixMs), "\(drill.durationMs) ms", drill.backupID)
            }
            print(table.render())
        }
    }
}

/// One drill's line: "fw-1 fw-1_….tar: restorable, verified at T (820 ms)" or why it is not.
func drillLine(_ drill: Rampart_Backup_V1_DrillResult) -> String {
    "\(drill.deviceName) \(drill.fileName): "
        + (drill.passed
            ? "restorable, verified at \(formatTime(drill.drilledUnixMs)) (\(drill.durationMs) ms)"
            : "NOT restorable: \(drill.reason)")
}

/// A backup's drill column: "restorable, verified at T", "not restorable: WHY", for a bundle "3 restorable, verified at T" or
/// the nodes that are not; "-" when never drilled.
func drillSummary(_ drills: [Rampart_Backup_V1_DrillResult], bundle: Bool) -> String {
    guard !drills.isEmpty else { return "-" }
    let latest = drills.map(\.drilledUnixMs).max() ?? 0
    let failed = drills.filter { !$0.passed }
    if !bundle, let drill = drills.first {
        return drill.passed ? "restorable, verified at \(formatTime(drill.drilledUnixMs))" : "not restorable: \(drill.reason)"
    }
    if failed.isEmpty { return "\(drills.count) restorable, verified at \(formatTime(latest))" }
    return "not restorable: " + failed.map(\.deviceName).joined(separator: ", ")
}

/// A device's drill column: its latest drill, "-" when never drilled.
func deviceDrillText(_ status: Rampart_Backup_V1_DeviceBackupStatus?) -> String {
    guard let status else { return "?" }
    guard status.hasLastDrill else { return "-" }
    let drill = status.lastDrill
    return drill.passed ? "restorable, verified at \(formatTime(drill.drilledUnixMs))" : "not restorable"
}
