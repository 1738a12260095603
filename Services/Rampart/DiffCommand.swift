import ArgumentParser
import Foundation
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC

extension BackupsCommand {
    /// `rampart backups diff`: what changed in a device's configuration between two backups (P17).
    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What changed in the configuration between two backups (volatile lines ignored, secrets never shown).",
            discussion: """
                `diff A B` compares backup A (old) with backup B (new); `diff BACKUP` compares a backup with \\
                the one before it; `diff DEVICE` compares a device's (or a cluster's, or a cluster node's) \\
                latest backup with the one before it. Bundles are compared node by node (`--node` for one). \\
                Storage decrypts both backups and sends only the diff: volatile lines (times, checksums, \\
                counters) are normalised by the rules listed at the end, and secret material shows as \\
                "changed (secret)" with no content. The audit log records who asked. \\
                `--output json` writes one line per node file compared.
                """)
        @Argument(help: "BACKUP_ID BACKUP_ID, BACKUP_ID, or DEVICE (a device, HA peer, cluster or cluster node).")
        var targets: [String]
        @Option(help: "For cluster bundles: only this node.") var node: String?
        @Option(help: "Unchanged lines shown around each change.") var context: UInt32 = 3
        @Flag(help: "The summary only (files and line counts), no lines.") var stat = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard (1...2).contains(targets.count) else {
                throw ValidationError("name two backups, one backup, or one device (got \(targets.count) arguments)")
            }
            guard context <= 1000 else { throw ValidationError("--context is at most 1000") }
        }

        func run() async throws {
            try await options.withClient { client in
                let (old, new) = try await sides(client)
                guard old.id != new.id else {
                    throw CommandFailure(message: "\(old.id) is the same backup on both sides", exitCode: 6)
                }
                let pairs = try filePairs(old, new)
                var first = true
                for pair in pairs {
                    if options.output == .table, !first { print("") }
                    first = false
                    try await compare(pair, old: old, new: new, client)
                }
            }
        }

        // MARK: which backups

        /// The two backups to compare, old first.
        func sides(_ client: BusClient) async throws -> (Rampart_Backup_V1_Backup, Rampart_Backup_V1_Backup) {
            if targets.count == 2 {
                return (try await backup(targets[0], client), try await backup(targets[1], client))
            }
            let target = targets[0]
            if UUID(uuidString: target) != nil {
                let new = try await backup(target, client)
                guard !new.previousBackupID.isEmpty else {
                    throw CommandFailure(
                        message: "backup \(new.id) (\(new.fileName)) is its owner's first: nothing before it to compare with (rampart backups diff OLD NEW compares any two)",
                        exitCode: 4)
                }
                return (try await backup(new.previousBackupID, client), new)
            }
            var request = Rampart_Backup_V1_ListBackupsRequest()
            request.owner = target
            request.limit = 2
            let listed: Rampart_Backup_V1_ListBackupsResponse = try await options.call(
                client, BackupAPI.listBackups, request, idempotent: true)
            switch listed.backups.count {
            case 0:
                throw CommandFailure(
                    message: "no backups of '\(target)' (a device, HA peer, cluster or cluster node name or id; see rampart backups list)",
                    exitCode: 3)
            case 1:
                throw CommandFailure(
                    message: "'\(target)' has one backup (\(listed.backups[0].fileName)): nothing to compare it with yet", exitCode: 4)
            default:
                return (listed.backups[1], listed.backups[0])
            }
        }

        func backup(_ id: String, _ client: BusClient) async throws -> Rampart_Backup_V1_Backup {
            var request = Rampart_Backup_V1_GetBackupRequest()
            request.backupID = id
            let response: Rampart_Backup_V1_BackupResponse = try await options.call(
                client, BackupAPI.getBackup, request, idempotent: true)
            return response.backup
        }

        /// One file of each side to compare: a device's own file, or one node's file of two bundles.
        struct FilePair {
            var label: String
            var old: Rampart_Storage_V1_DiffSide
            var new: Rampart_Storage_V1_DiffSide
            /// Only on one side (a node added to or left out of a bundle): which, and why there is no diff.
            var missing: String?
        }

        func filePairs(_ old: Rampart_Backup_V1_Backup, _ new: Rampart_Backup_V1_Backup) throws -> [FilePair] {
            func side(_ backup: Rampart_Backup_V1_Backup, _ member: String = "") -> Rampart_Storage_V1_DiffSide {
                var side = Rampart_Storage_V1_DiffSide()
                side.objectID = backup.objectID
                side.member = member
                return side
            }
            switch (old.members.isEmpty, new.members.isEmpty) {
            case (true, true):
                if let node { throw CommandFailure(message: "--node \(node): these backups are not cluster bundles", exitCode: 6) }
                return [FilePair(label: old.ownerName, old: side(old), new: side(new))]
            case (false, false):
                // A node's backups listed by its name are bundles: compare that node's files.
                let only = node ?? (targets.count == 1 && UUID(uuidString: targets[0]) == nil
                    && new.members.contains { $0.deviceName == targets[0] || $0.deviceID == targets[0] } ? targets[0] : nil)
                var names = old.members.map(\.deviceName)
                for name in new.members.map(\.deviceName) where !names.contains(name) { names.append(name) }
                if let only {
                    let matching = names.filter { name in
                        name == only || (old.members + new.members).contains { $0.deviceName == name && $0.deviceID == only }
                    }
                    guard !matching.isEmpty else {
                        throw CommandFailure(
                            message: "neither bundle holds node '\(only)' (they hold \(names.joined(separator: ", ")))", exitCode: 3)
                    }
                    names = matching
                }
                return names.map { name in
                    let before = old.members.first { $0.deviceName == name }
                    let after = new.members.first { $0.deviceName == name }
                    var pair = FilePair(
                        label: name, old: side(old, before?.fileName ?? ""), new: side(new, after?.fileName ?? ""))
                    if before == nil { pair.missing = "only in the new bundle (\(new.fileName))" }
                    if after == nil { pair.missing = "not in the new bundle (\(new.fileName)): its export failed or it left the cluster" }
                    return pair
                }
            default:
                throw CommandFailure(
                    message: "\(old.fileName) and \(new.fileName) cannot be compared: one is a cluster bundle, the other a device's file (compare a node with its name: rampart backups diff NODE)",
                    exitCode: 6)
            }
        }

        // MARK: comparing

        func compare(_ pair: FilePair, old: Rampart_Backup_V1_Backup, new: Rampart_Backup_V1_Backup, _ client: BusClient)
            async throws
        {
            if let missing = pair.missing {
                if options.output == .json { return }
                return print("\(pair.label): \(missing)")
            }
            // An unchanged backup shares the file of the one it was compared with: nothing to read.
            if pair.old.objectID == pair.new.objectID, pair.old.member == pair.new.member {
                var same = Rampart_Storage_V1_DiffObjectsResponse()
                same.oldFileName = pair.old.member.isEmpty ? old.fileName : pair.old.member
                same.newFileName = pair.new.member.isEmpty ? new.fileName : pair.new.member
                if options.output == .json { return try printJSON(same) }
                print(header(pair, old: old, new: new))
                return print("no configuration change: both backups hold the same file (\(same.newFileName))")
            }
            var request = Rampart_Storage_V1_DiffObjectsRequest()
            request.old = pair.old
            request.new = pair.new
            request.contextLines = context
            let diff: Rampart_Storage_V1_DiffObjectsResponse = try await options.call(
                client, StorageAPI.diffObjects, request, idempotent: true)
            if options.output == .json { return try printJSON(diff) }
            print(header(pair, old: old, new: new))
            print(Self.summary(diff))
            guard !diff.files.isEmpty else { return }
            var table = Table("FILE", "CHANGE")
            for file in diff.files { table.add(file.path, file.summary) }
            print(table.render())
            if !stat {
                for file in diff.files where !file.unified.isEmpty { print("\n" + file.unified, terminator: "") }
                for file in diff.files where file.tooManyToShow {
                    print("\n\(file.path): too many lines differ to show them line by line")
                }
            }
        }

        func header(_ pair: FilePair, old: Rampart_Backup_V1_Backup, new: Rampart_Backup_V1_Backup) -> String {
            func line(_ mark: String, _ backup: Rampart_Backup_V1_Backup, _ side: Rampart_Storage_V1_DiffSide) -> String {
                let file = side.member.isEmpty ? backup.fileName : side.member
                let unchanged = backup.unchangedFrom.isEmpty ? "" : ", unchanged since \(backup.unchangedFrom)"
                return "\(mark) \(file)  (backup \(backup.id), \(formatTime(backup.createdUnixMs))\(unchanged))"
            }
            return line("---", old, pair.old) + "\n" + line("+++", new, pair.new)
        }

        /// "3 files changed, 14 unchanged (1 differs only in volatile lines: saved-banner 4, …)".
        static func summary(_ diff: Rampart_Storage_V1_DiffObjectsResponse) -> String {
            let changed = diff.files.count == 1 ? "1 file changed" : "\(diff.files.count) files changed"
            let used = diff.rules.filter { $0.lines > 0 }.map { "\($0.name) \($0.lines)" }
            let volatile = diff.volatileOnly == 0
                ? "" : " (\(diff.volatileOnly) only in volatile lines: \(used.joined(separator: ", ")))"
            return diff.files.isEmpty && diff.volatileOnly > 0
                ? "no configuration change; \(diff.unchanged) files, \(diff.volatileOnly) differing only in volatile lines: \(used.joined(separator: ", "))"
                : "\(changed), \(diff.unchanged) unchanged\(volatile)"
        }
    }
}
