import ArgumentParser
import Foundation
import RampartAPI
import RampartProto

/// `rampart retention show|set`: the retention policy every worker prunes by.
struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "The retention policy: how many backups of each device or cluster are kept (show, set).",
        discussion: """
            Kept: the newest KEEP-LAST, and the newest good backup of each of the last KEEP-DAILY days, \\
            KEEP-WEEKLY ISO weeks and KEEP-MONTHLY months that have one; a device's last good backup is never \\
            deleted. `rampart backups prune --dry-run` shows what the policy would delete and why.
            """,
        subcommands: [Show.self, Set.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The policy in force, who set it and when.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let response: Rampart_Backup_V1_RetentionPolicyResponse = try await options.withClient {
                try await options.call($0, BackupAPI.getRetentionPolicy, Rampart_Backup_V1_GetRetentionPolicyRequest(), idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            print(RetentionCommand.table(response))
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the policy for every worker (administrators; audited). Numbers not given stay as they are.")
        @Option(help: "Always keep this many newest backups (at least 1).") var keepLast: UInt32?
        @Option(help: "Keep the newest good backup of each of this many last days.") var keepDaily: UInt32?
        @Option(help: "Keep the newest good backup of each of this many last ISO weeks.") var keepWeekly: UInt32?
        @Option(help: "Keep the newest good backup of each of this many last months.") var keepMonthly: UInt32?
        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard [keepLast, keepDaily, keepWeekly, keepMonthly].contains(where: { $0 != nil }) else {
                throw ValidationError("give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly")
            }
            if keepLast == 0 { throw ValidationError("--keep-last must be at least 1") }
        }

        func run() async throws {
            let response: Rampart_Backup_V1_RetentionPolicyResponse = try await options.withClient { client in
                let current: Rampart_Backup_V1_RetentionPolicyResponse = try await options.call(
                    client, BackupAPI.getRetentionPolicy, Rampart_Backup_V1_GetRetentionPolicyRequest(), idempotent: true)
                var request = Rampart_Backup_V1_SetRetentionPolicyRequest()
                request.policy = current.policy
                if let keepLast { request.policy.keepLast = keepLast }
                if let keepDaily { request.policy.keepDaily = keepDaily }
                if let keepWeekly { request.policy.keepWeekly = keepWeekly }
                if let keepMonthly { request.policy.keepMonthly = keepMonthly }
                return try await options.call(client, BackupAPI.setRetentionPolicy, request)
            }
            if options.output == .json { return try printJSON(response) }
            print(RetentionCommand.table(response))
        }
    }

    static func table(_ response: Rampart_Backup_V1_RetentionPolicyResponse) -> String {
        let policy = response.policy
        var table = Table("RULE", "KEEP")
        table.add("last", "\(policy.keepLast) newest")
        table.add("daily", "\(policy.keepDaily) days")
        table.add("weekly", "\(policy.keepWeekly) ISO weeks")
        table.add("monthly", "\(policy.keepMonthly) months")
        table.add("set by", response.setBy + (response.setUnixMs > 0 ? " at \(formatTime(response.setUnixMs))" : ""))
        return table.render()
    }
}
