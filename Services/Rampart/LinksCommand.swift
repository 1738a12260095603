import ArgumentParser
import Foundation
import RampartAPI
import RampartBasics
import RampartBus
import RampartCore
import RampartLinks
import RampartProto

/// `rampart links`: Export Backup Links (L2) — signed download URLs valid for a few hours, as a
/// table, JSON or a CSV file — and the keys that sign them.
struct LinksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "links", abstract: "Signed download links for backup files (rule L2), and their keys.",
        subcommands: [Export.self, Exports.self, Keys.self])

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a signed download URL per backup file (valid 6h by default), optionally as a CSV file.",
            discussion: """
                Name exactly one of: backup ids (arguments), --device, --ha-pair, --cluster or --job.
                For a device, an HA pair or a cluster the latest backup (of each peer) is exported, or every
                stored one with --all. Every export makes new URLs; each is valid until its expiry, then 403.
                """)
        @Argument(help: "Backup ids.") var backups: [String] = []
        @Option(help: "A device (name or id).") var device: String?
        @Option(name: .customLong("ha-pair"), help: "An HA pair (name or id): both peers' files.") var haPair: String?
        @Option(help: "A cluster (name or id): its bundle.") var cluster: String?
        @Option(help: "A job id: every file it stored.") var job: String?
        @Flag(help: "Every stored backup of the device, pair or cluster, not only the latest.") var all = false
        @Option(help: "How long the links work, e.g. 6h, 2h, 90m, 45s (at most 6h).") var valid: String = "6h"
        @Option(help: "Also write the links as a CSV file here: a file, a folder (DIR/links-<time>.csv), or \"-\" for standard output.")
        var csv: String?
        @Flag(help: "Replace an existing CSV file (a folder is never replaced).") var force = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            let named = [!backups.isEmpty, device != nil, haPair != nil, cluster != nil, job != nil].filter { $0 }.count
            guard named == 1 else {
                throw ValidationError("name exactly one of: backup ids, --device, --ha-pair, --cluster or --job")
            }
            if all && (!backups.isEmpty || job != nil) {
                throw ValidationError("--all goes with --device, --ha-pair or --cluster")
            }
            do {
                _ = try LinkValidity.parse(valid)
            } catch {
                throw ValidationError("--valid: \(error.message)")
            }
        }

        func run() async throws {
            // Checked before anything is exported: a CSV that could not be written would leave links nobody has.
            let csvFile = try await reportingFailures { () -> OutputFile? in
                guard let csv, csv != "-" else { return nil }
                let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
                return try OutputFile(csv, defaultName: "links-\(stamp).csv", force: force)
            }
            var request = Rampart_Links_V1_ExportBackupLinksRequest()
            request.selector.backupIds = backups
            request.selector.device = device ?? ""
            request.selector.haPair = haPair ?? ""
            request.selector.cluster = cluster ?? ""
            request.selector.jobID = job ?? ""
            request.selector.all = all
            request.validSeconds = UInt32(try LinkValidity.parse(valid).components.seconds)
            let response: Rampart_Links_V1_ExportBackupLinksResponse = try await options.withClient {
                try await options.call($0, LinksAPI.exportBackupLinks, request)
            }
            if csv == "-" {
                FileHandle.standardOutput.write(Data(response.csv.utf8))
                return
            }
            if let csvFile {
                try await reportingFailures { try csvFile.write(Data(response.csv.utf8)) }
                FileHandle.standardError.write(Data("links written to \(csvFile.path)\n".utf8))
            }
            if options.output == .json { return try printJSON(response) }
            var table = Table("DEVICE", "ROLE", "FILE", "SIZE", "EXPIRES", "URL")
            for link in response.links {
                table.add(
                    link.deviceName, link.role == .unspecified ? "cluster" : link.role.label, link.fileName,
                    "\(link.size)", formatTime(link.expiresUnixMs), link.url)
            }
            print(table.render())
            let written = csv.map { ", CSV written to \($0)" } ?? ""
            print("export \(response.exportID): \(response.links.count) links\(written)")
        }
    }

    struct Exports: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recent exports: who, when, which backups.")
        @Option(help: "How many.") var limit: UInt32 = 50
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Links_V1_ListExportsRequest()
            request.limit = limit
            let response: Rampart_Links_V1_ListExportsResponse = try await options.withClient {
                try await options.call($0, LinksAPI.listExports, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            var table = Table("CREATED", "BY", "SELECTOR", "LINKS", "EXPIRES", "ID")
            for export in response.exports {
                table.add(
                    formatTime(export.createdUnixMs), export.requestedBy, export.selector, "\(export.backupIds.count)",
                    formatTime(export.expiresUnixMs), export.id)
            }
            print(table.render())
        }
    }

    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keys", abstract: "The link-signing keys: list, rotate.", subcommands: [List.self, Rotate.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Signing keys, newest first: the active one and the retired ones still verifying.")
            @OptionGroup var options: ClientOptions

            func run() async throws {
                let response: Rampart_Links_V1_ListKeysResponse = try await options.withClient {
                    try await options.call(
                        $0, LinksAPI.listKeys, Rampart_Links_V1_ListKeysRequest(),
                        idempotent: true)
                }
                if options.output == .json { return try printJSON(response) }
                print(Keys.table(response.keys).render())
            }
        }

        struct Rotate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make a new signing key; the old one verifies only until the last link it signed expires.")
            @OptionGroup var options: ClientOptions

            func run() async throws {
                let response: Rampart_Links_V1_RotateKeyResponse = try await options.withClient {
                    try await options.call(
                        $0, LinksAPI.rotateKey, Rampart_Links_V1_RotateKeyRequest())
                }
                if options.output == .json { return try printJSON(response) }
                print(
                    "active key \(response.active.id); key \(response.retired.id) retired, verifying until \(formatTime(response.retired.verifiesUntilUnixMs))"
                )
            }
        }

        static func table(_ keys: [Rampart_Links_V1_SigningKeyInfo]) -> Table {
            let now = Date().unixMillis
            var table = Table("ID", "STATE", "CREATED", "RETIRED", "VERIFIES UNTIL")
            for key in keys {
                let state = key.active ? "active" : (key.verifiesUntilUnixMs >= now ? "retired" : "expired")
                table.add(
                    key.id, state, formatTime(key.createdUnixMs), key.active ? "-" : formatTime(key.retiredUnixMs),
                    key.active ? "-" : formatTime(key.verifiesUntilUnixMs))
            }
            return table
        }
    }
}
