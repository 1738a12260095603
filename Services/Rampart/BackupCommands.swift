import ArgumentParser
import Crypto
import Foundation
import RampartAPI
import RampartArchive
import RampartBasics
import RampartBus
import RampartInventory
import RampartProto
import RampartRPC


/// Parses "device:NAME", "pair:NAME", "cluster:NAME", "all" or a bare NAME.
func parseTarget(_ text: String) throws -> Rampart_Backup_V1_Target {
    var target = Rampart_Backup_V1_Target()
    if text == "all" {
        target.kind = .allDevices
        return target
    }
    let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
    if parts.count == 2 {
        switch parts[0] {
        case "device": target.kind = .device
        case "pair", "ha-pair": target.kind = .haPair
        case "cluster": target.kind = .cluster
        default: throw ValidationError("unknown target kind '\(parts[0])': device:, pair:, cluster: or all")
        }
        target.ref = parts[1]
    } else {
        target.ref = text
    }
    guard target.kind == .allDevices || !target.ref.isEmpty else { throw ValidationError("empty target '\(text)'") }
    return target
}

func targetText(_ target: Rampart_Backup_V1_Target) -> String {
    target.kind == .allDevices ? "all" : (target.kind == .unspecified ? target.ref : "\(target.kind.label):\(target.ref)")
}

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Back up devices, HA pairs and clusters now.", subcommands: [Start.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a backup job (rule B3: many targets in one request).",
            discussion: """
                TARGET is a device, HA pair or cluster name (or device:NAME, pair:NAME, cluster:NAME), or 'all'.
                With --wait: exit 0 when every target succeeded, 7 partially succeeded, 8 failed, 9 cancelled.
                """)
        @Argument(help: "What to back up.") var targets: [String]
        @Flag(help: "Follow the job until it ends, showing each target's progress.") var wait = false
        @Option(help: "Reuse this key to make a retried request return the same job.") var idempotencyKey: String?
        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard !targets.isEmpty else { throw ValidationError("name at least one target") }
        }

        func run() async throws {
            var request = Rampart_Backup_V1_StartBackupRequest()
            request.targets = try targets.map(parseTarget)
            request.idempotencyKey = idempotencyKey ?? UUID().uuidString
            let job: Rampart_Backup_V1_Job = try await options.withClient { client in
                let response: Rampart_Backup_V1_JobResponse = try await options.call(
                    client, BackupAPI.startBackup, request, idempotent: true)
                guard wait else { return response.job }
                return try await follow(response.job, client: client, options: options)
            }
            if options.output == .json { try printJSON(job) } else if !wait { printJob(job) }
            if wait { throw ExitCode(jobExitCode(job.state)) }
        }
    }
}

/// Polls the job until it ends; on a terminal, redraws one line per target in place.
func follow(_ job: Rampart_Backup_V1_Job, client: BusClient, options: ClientOptions) async throws -> Rampart_Backup_V1_Job {
    let live = options.output == .table && isatty(STDOUT_FILENO) == 1
    var current = job
    var printedLines = 0
    var lastLines: [String] = []
    if options.output == .table { print("job \(job.id) (\(job.tasks.count) \(job.tasks.count == 1 ? "target" : "targets"))") }
    while true {
        let lines = current.tasks.map(taskLine)
        if live {
            if printedLines > 0 { print("\u{1B}[\(printedLines)A", terminator: "") }
            for line in lines { print("\u{1B}[2K" + line) }
            printedLines = lines.count
        } else if options.output == .table {
            for (index, line) in lines.enumerated() where index >= lastLines.count || lastLines[index] != line {
                print(line)
            }
        }
        fflush(nil)
        lastLines = lines
        if current.state.isFinished { break }
        try await Task.sleep(for: .milliseconds(live ? 200 : 500))
        var request = Rampart_Backup_V1_GetJobRequest()
        request.jobID = job.id
        let response: Rampart_Backup_V1_JobResponse = try await options.call(
            client, BackupAPI.getJob, request, idempotent: true)
        current = response.job
    }
    if options.output == .table { print("job \(current.id) \(current.state.label)") }
    return current
}

func taskLine(_ task: Rampart_Backup_V1_Task) -> String {
    let width = 20
    let filled = Int(task.progressPercent) * width / 100
    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    let name = "\(task.kind.label) \(task.targetName)".padding(toLength: 28, withPad: " ", startingAt: 0)
    return "\(name) [\(bar)] \(String(format: "%3d", task.progressPercent))%  \(task.state.label.padding(toLength: 19, withPad: " ", startingAt: 0)) \(task.message)"
}

func jobExitCode(_ state: Rampart_Backup_V1_JobState) -> Int32 {
    switch state {
    case .succeeded: 0
    case .partiallySucceeded: 7
    case .cancelled: 9
    default: 8
    }
}

func printJob(_ job: Rampart_Backup_V1_Job) {
    print("job \(job.id): \(job.state.label), \(job.origin), by \(job.requestedBy), created \(formatTime(job.createdUnixMs))")
    var table = Table("TARGET", "KIND", "STATE", "PROGRESS", "ATTEMPTS", "MESSAGE")
    for task in job.tasks {
        table.add(task.targetName, task.kind.label, task.state.label, "\(task.progressPercent)%", "\(task.attempts)", task.message)
    }
    print(table.render())
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "Backup jobs: list, show, cancel.", subcommands: [List.self, Show.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recent jobs, newest first.")
        @Option(help: "How many.") var limit: UInt32 = 20
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_ListJobsRequest()
            request.limit = limit
            let response: Rampart_Backup_V1_ListJobsResponse = try await options.withClient {
                try await options.call($0, BackupAPI.listJobs, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            var table = Table("JOB", "STATE", "ORIGIN", "TARGETS", "CREATED", "BY")
            for job in response.jobs {
                table.add(job.id, job.state.label, job.origin, "\(job.tasks.count)", formatTime(job.createdUnixMs), job.requestedBy)
            }
            print(table.render())
        }

        /// P17: "unchanged" (shares the previous backup's file), "changed: 3 files", or "-" (not compared).
        static func configuration(_ backup: Rampart_Backup_V1_Backup) -> String {
            if !backup.unchangedFrom.isEmpty { return "unchanged" }
            if !backup.changedFiles.isEmpty {
                return backup.changedFiles.count == 1 ? "changed: 1 file" : "changed: \(backup.changedFiles.count) files"
            }
            return "-"
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A job and its targets' tasks.")
        @Argument(help: "Job id.") var job: String
        @Flag(help: "Follow it until it ends; the exit code then says how it ended (0, 7, 8, 9).") var wait = false
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_GetJobRequest()
            request.jobID = job
            let job: Rampart_Backup_V1_Job = try await options.withClient { client in
                let response: Rampart_Backup_V1_JobResponse = try await options.call(
                    client, BackupAPI.getJob, request, idempotent: true)
                return wait ? try await follow(response.job, client: client, options: options) : response.job
            }
            if options.output == .json { try printJSON(job) } else if !wait { printJob(job) }
            if wait { throw ExitCode(jobExitCode(job.state)) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a job: waiting targets at once, running ones at their next step.")
        @Argument(help: "Job id.") var job: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_CancelJobRequest()
            request.jobID = job
            let response: Rampart_Backup_V1_JobResponse = try await options.withClient {
                try await options.call($0, BackupAPI.cancelJob, request)
            }
            if options.output == .json { return try printJSON(response) }
            printJob(response.job)
        }
    }
}

struct BackupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backups", abstract: "Stored backup files: list, show, diff, download, extract a cluster node.",
        subcommands: [List.self, Show.self, Diff.self, Download.self, Extract.self, Prune.self, Status.self])

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the retention policy now (keep last N and daily/weekly/monthly; never a device's last good backup).",
            discussion: "Each deleted backup is listed with why (for each rule, why it does not keep it); with --dry-run and --owner, each kept one with the rules keeping it.")
        @Option(help: "Only this device or cluster (name or id).") var owner: String?
        @Flag(name: .customLong("dry-run"), help: "Show what would be deleted; delete nothing.") var dryRun = false
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_PruneBackupsRequest()
            request.owner = owner ?? ""
            request.dryRun = dryRun
            let response: Rampart_Backup_V1_PruneBackupsResponse = try await options.withClient {
                try await options.call($0, BackupAPI.pruneBackups, request)
            }
            if options.output == .json { return try printJSON(response) }
            let policy = response.policy
            print(
                "\(dryRun ? "would delete" : "deleted") \(response.deleted.count) \(response.deleted.count == 1 ? "backup" : "backups"), kept \(response.kept) "
                    + "(policy: last \(policy.keepLast), daily \(policy.keepDaily), weekly \(policy.keepWeekly), monthly \(policy.keepMonthly); rampart retention show)")
            for reason in response.reasons {
                print("  delete \(reason.fileName)  \(reason.backupID)")
                for why in reason.reasons { print("      \(why)") }
            }
            for reason in response.keptBackups {
                print("  keep   \(reason.fileName)  \(reason.backupID): \(reason.reasons.joined(separator: ", "))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stored backups, newest first (rule B6).")
        @Option(help: "Only this device or cluster (name or id).") var owner: String?
        @Option(help: "Only this job.") var job: String?
        @Option(help: "How many.") var limit: UInt32 = 100
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_ListBackupsRequest()
            request.owner = owner ?? ""
            request.jobID = job ?? ""
            request.limit = limit
            let response: Rampart_Backup_V1_ListBackupsResponse = try await options.withClient {
                try await options.call($0, BackupAPI.listBackups, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            var table = Table("FILE", "OWNER", "ROLE", "SIZE", "SOFTWARE", "CREATED", "CONFIG", "DRILL", "ID")
            for backup in response.backups {
                table.add(
                    backup.fileName, backup.ownerName, backup.members.isEmpty ? backup.role.label : "bundle:\(backup.members.count)",
                    "\(backup.size)", InventoryRules.describe(backup.software), formatTime(backup.createdUnixMs),
                    Self.configuration(backup), drillSummary(backup.drills, bundle: !backup.members.isEmpty), backup.id)
            }
            print(table.render())
        }

        /// P17: "unchanged" (shares the previous backup's file), "changed: 3 files", or "-" (not compared).
        static func configuration(_ backup: Rampart_Backup_V1_Backup) -> String {
            if !backup.unchangedFrom.isEmpty { return "unchanged" }
            if !backup.changedFiles.isEmpty {
                return backup.changedFiles.count == 1 ? "changed: 1 file" : "changed: \(backup.changedFiles.count) files"
            }
            return "-"
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One backup and, for a cluster bundle, its node files.")
        @Argument(help: "Backup id.") var backup: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_GetBackupRequest()
            request.backupID = backup
            let response: Rampart_Backup_V1_BackupResponse = try await options.withClient {
                try await options.call($0, BackupAPI.getBackup, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            let b = response.backup
            var table = Table("FIELD", "VALUE")
            table.add("id", b.id)
            table.add("file", b.fileName)
            table.add("owner", "\(b.ownerName) (\(b.ownerID))")
            table.add("role", b.role.label.isEmpty ? "-" : b.role.label)
            table.add("size", "\(b.size)")
            table.add("sha256", b.sha256)
            table.add("software", InventoryRules.describe(b.software))
            table.add("job", b.jobID)
            table.add("created", formatTime(b.createdUnixMs))
            table.add("previous", b.previousBackupID.isEmpty ? "- (not compared)" : b.previousBackupID)
            if !b.unchangedFrom.isEmpty { table.add("configuration", "unchanged: shares the file of backup \(b.unchangedFrom)") }
            if !b.changedFiles.isEmpty { table.add("changed files", b.changedFiles.joined(separator: ", ")) }
            print(table.render())
            if !b.members.isEmpty {
                var members = Table("NODE FILE", "NODE", "ROLE", "SIZE", "SHA256")
                for m in b.members { members.add(m.fileName, m.deviceName, m.role.label, "\(m.size)", m.sha256) }
                print(members.render())
            }
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a backup file over the bus, checking its SHA-256 (rule B6/L1).")
        @Argument(help: "Backup id.") var backup: String?
        @Option(
            help: ArgumentHelp(
                "Instead of an id: the newest backup of this device, HA peer or cluster node (a node's: the newest bundle holding its file).",
                valueName: "DEVICE"))
        var latest: String?
        @Option(
            name: [.customShort("o"), .customLong("to")],
            help: "Where to write it: a file, or a folder (DIR or DIR/) to get DIR/<its file name> (default: its file name here).")
        var output: String?
        @Flag(help: "Replace an existing file (a folder is never replaced).") var force = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard (backup == nil) != (latest == nil) else {
                throw ValidationError("name a backup id or --latest DEVICE (one of them)")
            }
        }

        func run() async throws {
            try await options.withClient { client in
                var request = Rampart_Backup_V1_GetBackupRequest()
                request.backupID = try await backupID(client)
                let response: Rampart_Backup_V1_BackupResponse = try await options.call(
                    client, BackupAPI.getBackup, request, idempotent: true)
                let b = response.backup
                let target = try OutputFile(output, defaultName: b.fileName, force: force)
                let path = target.path
                let partial = try target.begin()
                let file = partial.handle
                var committed = false
                defer { if !committed { partial.abandon() } }
                var hash = SHA256()
                var offset: UInt64 = 0
                let bar = ProgressBar(total: b.size, label: b.fileName)
                while true {
                    var read = Rampart_Storage_V1_ReadObjectRequest()
                    read.objectID = b.objectID
                    read.offset = offset
                    read.length = 1 << 20
                    let chunk: Rampart_Storage_V1_ReadObjectResponse = try await options.call(
                        client, StorageAPI.readObject, read, idempotent: true)
                    do {
                        try file.write(contentsOf: chunk.data)
                    } catch {
                        throw CommandFailure(message: "cannot write \(path): \(error.localizedDescription)", exitCode: 1)
                    }
                    hash.update(data: chunk.data)
                    offset += UInt64(chunk.data.count)
                    bar.update(offset)
                    if chunk.eof || chunk.data.isEmpty { break }
                }
                bar.finish()
                let digest = hash.finalize().hexString
                guard offset == b.size, digest == b.sha256 else {
                    throw RPCError(.dataLoss, "downloaded \(offset) bytes with SHA-256 \(digest), expected \(b.size) bytes and \(b.sha256): nothing written")
                }
                committed = true
                try target.commit(partial)
                if options.output == .json {
                    print(#"{"file":"\#(path)","size":\#(offset),"sha256":"\#(digest)"}"#)
                } else {
                    print("\(path): \(offset) bytes, SHA-256 \(digest) verified")
                }
            }
        }

        /// The id asked for, or the newest backup of `--latest` (NOT_FOUND, exit 3, when it has none).
        private func backupID(_ client: BusClient) async throws -> String {
            if let backup { return backup }
            var list = Rampart_Backup_V1_ListBackupsRequest()
            list.owner = latest ?? ""
            list.limit = 1
            let response: Rampart_Backup_V1_ListBackupsResponse = try await options.call(
                client, BackupAPI.listBackups, list, idempotent: true)
            guard let newest = response.backups.first else {
                throw RPCError(.notFound, "\(list.owner) has no backups (rampart backup start \(list.owner))")
            }
            return newest.id
        }
    }

    struct Extract: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take one node's .tar out of a downloaded cluster bundle (rule R8), to restore that node.")
        @Argument(help: "The cluster bundle (.tar.gz).") var bundle: String
        @Option(help: "The node's device name.") var node: String
        @Option(
            name: [.customShort("o"), .customLong("to")],
            help: "Where to write it: a file, or a folder (DIR or DIR/) to get DIR/<the node file's name> (default: here).")
        var output: String?
        @Flag(help: "Replace an existing file (a folder is never replaced).") var force = false

        func run() async throws {
            // Read as a stream, twice (find the node's file, then copy it out), a buffer at a time: neither
            // the bundle nor the node's file is held in memory, whatever their size.
            let file: ArchiveFile
            do {
                file = try ArchiveFile(path: bundle)
            } catch {
                printError("cannot read \(bundle)")
                throw ExitCode(3)
            }
            try await reportingFailures {
                do {
                    let fileName = try ClusterBundle.nodeFile(in: .file(file), node: node)
                    let target = try OutputFile(output, defaultName: fileName, force: force)
                    let partial = try target.begin()
                    let size: Int
                    do {
                        size = try ClusterBundle.copy(fileName, from: .file(file)) { piece in
                            do {
                                try partial.handle.write(contentsOf: piece)
                            } catch {
                                throw CommandFailure(
                                    message: "cannot write \(target.path): \(error.localizedDescription)", exitCode: 1)
                            }
                        }
                    } catch {
                        partial.abandon()
                        throw error
                    }
                    try target.commit(partial)
                    print("\(target.path): \(size) bytes")
                } catch let error as ArchiveError {
                    printError("\(error)")
                    throw ExitCode(6)
                }
            }
        }
    }
}

struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage", abstract: "Backup storage.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decrypt and check stored objects; exit 10 when any is damaged.")
        @Option(help: "Check this many objects chosen at random (default: all).") var sample: UInt32 = 0
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Storage_V1_VerifyRequest()
            request.sample = sample
            let response: Rampart_Storage_V1_VerifyResponse = try await options.withClient {
                try await options.call($0, StorageAPI.verify, request, idempotent: true)
            }
            if options.output == .json { try printJSON(response) } else {
                print("checked \(response.checked) objects, \(response.damaged.count) damaged")
                if !response.damaged.isEmpty {
                    var table = Table("OBJECT", "FILE", "DAMAGE")
                    for d in response.damaged { table.add(d.objectID, d.fileName, d.reason) }
                    print(table.render())
                }
            }
            if !response.damaged.isEmpty { throw ExitCode(10) }
        }
    }
}

/// A progress bar on standard error, drawn only on a terminal.
final class ProgressBar {
    private let total: UInt64
    private let label: String
    private let live = isatty(STDERR_FILENO) == 1
    private var lastPercent = -1

    init(total: UInt64, label: String) {
        self.total = total
        self.label = label
    }

    func update(_ done: UInt64) {
        guard live else { return }
        let percent = total == 0 ? 100 : Int(done * 100 / total)
        guard percent != lastPercent else { return }
        lastPercent = percent
        let filled = percent * 30 / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(percent)%".utf8))
    }

    func finish() {
        if live { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
