import ArgumentParser
import Foundation
import RampartAPI
import RampartBasics
import RampartBus
import RampartProto
import RampartRPC

/// The exit code of `rampart backups status` when a supported device's last good backup is older than its
/// objective (README's table; docs/backups.md, "Backup objectives").
let staleExitCode: Int32 = 12

/// "3d4h ago", "-" for never.
func ageText(_ status: Rampart_Backup_V1_DeviceBackupStatus) -> String {
    status.lastBackupID.isEmpty ? "-" : "\(DurationText.describe(seconds: status.ageSeconds)) ago"
}

/// "36h (own)" or "8d (default)".
func objectiveText(_ status: Rampart_Backup_V1_DeviceBackupStatus) -> String {
    DurationText.describe(seconds: status.objectiveSeconds, parts: 4) + (status.objectiveOverridden ? " (own)" : " (default)")
}

/// Every device's backup state (P16), or nil with a line on standard error when the backup service cannot
/// say (the caller shows what it has without it).
func deviceStatuses(_ options: ClientOptions, _ client: BusClient) async -> [String: Rampart_Backup_V1_DeviceBackupStatus]? {
    do {
        let response = try await options.call(
            client, BackupAPI.listDeviceStatus, Rampart_Backup_V1_ListDeviceStatusRequest(), idempotent: true)
        return Dictionary(response.devices.map { ($0.deviceID, $0) }, uniquingKeysWith: { first, _ in first })
    } catch let error as RPCError {
        printError("backup state unknown (\(error.code.name): \(error.message))")
        return nil
    } catch {
        printError("backup state unknown (\(error))")
        return nil
    }
}

extension DevicesCommand {
    struct Objective: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a device's backup objective (e.g. 36h, 2d, 1d12h), or go back to the default with --clear.",
            discussion: """
                A device whose last good backup is older than its objective is stale (rampart backups status, \
                the event backup.device.stale). The default is backup-worker's --backup-objective (8d).
                """)
        @Argument(help: "Device name or id.") var device: String
        @Argument(help: "The objective: days, hours, minutes, seconds (8d, 36h, 1d12h, 90m), at most 366d.")
        var objective: String?
        @Flag(help: "Use the installation's default objective again.") var clear = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            switch (objective, clear) {
            case (nil, false): throw ValidationError("give an objective (e.g. 36h) or --clear")
            case (.some, true): throw ValidationError("give an objective or --clear, not both")
            case (let text?, false):
                guard BackupAPI.parseObjective(text) != nil else {
                    throw ValidationError("objective '\(text)': a duration such as 8d, 36h, 1d12h or 90m, from 1s to 366d")
                }
            case (nil, true): break
            }
        }

        func run() async throws {
            var request = Rampart_Backup_V1_SetBackupObjectiveRequest()
            request.device = device
            request.clear = clear
            request.objectiveSeconds = objective.flatMap(BackupAPI.parseObjective) ?? 0
            let response: Rampart_Backup_V1_DeviceStatusResponse = try await options.withClient {
                try await options.call($0, BackupAPI.setBackupObjective, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            let status = response.status
            print("\(status.deviceName): objective \(objectiveText(status)), last good backup \(ageText(status)), \(status.state.label)")
        }
    }
}

extension BackupsCommand {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Is every device's last good backup within its objective? Exits 12 when one is stale.",
            discussion: """
                Counts devices per state — ok, stale (last good backup older than its objective, or never \
                backed up an objective after its registration), never, unsupported (B2) — and lists the stale \
                ones. For cron and monitoring: exit 0 when none is stale, 12 when one is.
                """)
        @Flag(help: "List every device, not only the stale ones.") var all = false
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let response: Rampart_Backup_V1_ListDeviceStatusResponse = try await options.withClient {
                try await options.call($0, BackupAPI.listDeviceStatus, Rampart_Backup_V1_ListDeviceStatusRequest(), idempotent: true)
            }
            if options.output == .json {
                try printJSON(response)
            } else {
                print(
                    "\(response.ok) ok, \(response.stale) stale, \(response.never) never backed up, "
                        + "\(response.unsupported) unsupported; default objective "
                        + "\(DurationText.describe(seconds: response.defaultObjectiveSeconds, parts: 4)), checked \(formatTime(response.checkedUnixMs))")
                let shown = response.devices.filter { all || $0.state == .stale }
                if !shown.isEmpty {
                    var table = Table("DEVICE", "STATE", "LAST GOOD BACKUP", "AGE", "OBJECTIVE", "REASON")
                    for status in shown {
                        table.add(
                            status.deviceName, status.state.label, formatTime(status.lastBackupUnixMs), ageText(status),
                            objectiveText(status), status.reason)
                    }
                    print(table.render())
                }
            }
            if response.stale > 0 { throw ExitCode(staleExitCode) }
        }
    }
}
