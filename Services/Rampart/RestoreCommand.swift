import ArgumentParser
import Foundation
import RampartAPI
import RampartBus
import RampartCore
import RampartProto

/// `rampart restore …`: restore leases (status, history, forced release) and the post-restore
/// checklist (R13). Restores themselves run on the device (R1): `device-agent cli`.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restores: leases (status, history, release) and the post-restore checklist (R1–R14).",
        discussion: """
            A restore runs on the replacement device itself (R1): 'restore remote-manager-backup …' in its CLI.
            Rampart coordinates: one restore at a time per HA pair and cluster, the control node first (R7, R8).
            """,
        subcommands: [Status.self, History.self, Show.self, Release.self, Checklist.self, Complete.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restores in progress (active leases).")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Restore_V1_ListLeasesRequest()
            request.activeOnly = true
            try await RestoreCommand.list(request, options)
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restore leases, newest first, with how each ended.")
        @Option(help: "Only this device (name or id).") var device: String?
        @Option(help: "How many.") var limit: UInt32 = 50
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Restore_V1_ListLeasesRequest()
            request.device = device ?? ""
            request.limit = limit
            try await RestoreCommand.list(request, options)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One restore lease.")
        @Argument(help: "Lease id.") var lease: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Restore_V1_GetLeaseRequest()
            request.leaseID = lease
            let response: Rampart_Restore_V1_LeaseResponse = try await options.withClient {
                try await options.call($0, RestoreAPI.getLease, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            let lease = response.lease
            print("lease \(lease.id): \(lease.deviceName) (\(lease.role.label)), \(lease.state.label), step \(lease.step)")
            print("  fencing token \(lease.fencingToken); replacement serial \(lease.replacementSerial); archive \(lease.archiveFileName)")
            print("  granted \(formatTime(lease.grantedUnixMs)); \(lease.endedUnixMs > 0 ? "ended \(formatTime(lease.endedUnixMs))" : "expires \(formatTime(lease.expiresUnixMs)) unless renewed")")
            if !lease.endReason.isEmpty { print("  reason: \(lease.endReason)\(lease.releasedBy.isEmpty ? "" : " (by \(lease.releasedBy))")") }
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End an active restore lease by force, with a reason (audited); the next restore may start.")
        @Argument(help: "Lease id.") var lease: String
        @Option(help: "Why (recorded and published).") var reason: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Restore_V1_ReleaseLeaseRequest()
            request.leaseID = lease
            request.reason = reason
            let response: Rampart_Restore_V1_LeaseResponse = try await options.withClient {
                try await options.call($0, RestoreAPI.releaseLease, request)
            }
            if options.output == .json { return try printJSON(response) }
            print("released lease \(response.lease.id) of \(response.lease.deviceName): \(response.lease.endReason)")
        }
    }

    struct Checklist: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What remains to do after a device was restored (R13).")
        @Argument(help: "Device (name or id).") var device: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Restore_V1_GetChecklistRequest()
            request.device = device
            let response: Rampart_Restore_V1_ChecklistResponse = try await options.withClient {
                try await options.call($0, RestoreAPI.getChecklist, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            RestoreCommand.printChecklist(response.checklist)
        }
    }

    struct Complete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tick off a checklist item done outside Rampart (licensing, reconfiguration, data interfaces, VPN certificates).")
        @Argument(help: "Device (name or id).") var device: String
        @Argument(help: "Item key, e.g. resolve-licensing.") var item: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Restore_V1_CompleteItemRequest()
            request.device = device
            request.key = item
            let response: Rampart_Restore_V1_ChecklistResponse = try await options.withClient {
                try await options.call($0, RestoreAPI.completeItem, request)
            }
            if options.output == .json { return try printJSON(response) }
            RestoreCommand.printChecklist(response.checklist)
        }
    }

    static func list(_ request: Rampart_Restore_V1_ListLeasesRequest, _ options: ClientOptions) async throws {
        let response: Rampart_Restore_V1_ListLeasesResponse = try await options.withClient {
            try await options.call($0, RestoreAPI.listLeases, request, idempotent: true)
        }
        if options.output == .json { return try printJSON(response) }
        var table = Table("DEVICE", "ROLE", "STATE", "STEP", "TOKEN", "GRANTED", "ENDED", "LEASE")
        for lease in response.leases {
            table.add(
                lease.deviceName, lease.role.label, lease.state.label, lease.step, "\(lease.fencingToken)",
                formatTime(lease.grantedUnixMs), lease.endedUnixMs > 0 ? formatTime(lease.endedUnixMs) : "-", lease.id)
        }
        print(table.render())
    }

    static func printChecklist(_ checklist: Rampart_Restore_V1_Checklist) {
        print("after the restore of \(checklist.deviceName) (\(formatTime(checklist.openedUnixMs))):")
        for item in checklist.items {
            print("  [\(item.done ? "x" : " ")] \(item.key): \(item.title)\(item.done ? " — done by \(item.doneBy)" : "")")
            for detail in item.details { print("        - \(detail)") }
        }
    }

}

/// `rampart deploy DEVICE [--force]` (R13): deploys the configuration, clearing the out-of-date flag.
struct DeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Deploy to a device: required after a restore (R13); --force when it is not marked out of date.")
    @Argument(help: "Device (name or id).") var device: String
    @Flag(help: "Deploy even when the device is not out of date.") var force = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var request = Rampart_Restore_V1_DeployRequest()
        request.device = device
        request.force = force
        let response: Rampart_Restore_V1_DeployResponse = try await options.withClient {
            try await options.call($0, RestoreAPI.deploy, request)
        }
        if options.output == .json { return try printJSON(response) }
        print("deployed to \(device)\(response.forced ? " (forced)" : "")")
    }
}

/// `rampart ha resume-sync PAIR` (R13): resumes HA synchronisation after a restore.
struct HaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ha", abstract: "HA operations after a restore.", subcommands: [ResumeSync.self])

    struct ResumeSync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resume-sync", abstract: "Resume HA synchronisation of a pair (R13).")
        @Argument(help: "HA pair (name or id).") var pair: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Restore_V1_ResumeHaSyncRequest()
            request.pair = pair
            let response: Rampart_Restore_V1_ResumeHaSyncResponse = try await options.withClient {
                try await options.call($0, RestoreAPI.resumeHaSync, request)
            }
            if options.output == .json { return try printJSON(response) }
            print("HA pair \(response.pair.name): synchronisation \(response.pair.syncState.label)")
        }
    }
}
