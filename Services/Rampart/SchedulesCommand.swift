import ArgumentParser
import Foundation
import RampartAPI
import RampartProto

struct SchedulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules", abstract: "Scheduled backups (rule B4): list, show, create, update, pause, resume, delete.",
        subcommands: [List.self, Show.self, Create.self, Update.self, Pause.self, Resume.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every schedule and when it runs next.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let response: Rampart_Backup_V1_ListSchedulesResponse = try await options.withClient {
                try await options.call(
                    $0, BackupAPI.listSchedules, Rampart_Backup_V1_ListSchedulesRequest(),
                    idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            var table = Table("NAME", "KIND", "CRON", "TIME ZONE", "TARGETS", "STATE", "NEXT RUN", "LAST RUN")
            for s in response.schedules {
                table.add(
                    s.name, s.drill ? "drill" : "backup", s.cron, s.timeZone, scheduleTargetsText(s, separator: ","),
                    s.paused ? "paused" : "active",
                    formatTime(s.nextRunUnixMs), formatTime(s.lastRunUnixMs))
            }
            print(table.render())
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One schedule.")
        @Argument(help: "Schedule name or id.") var schedule: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_GetScheduleRequest()
            request.schedule = schedule
            let response: Rampart_Backup_V1_ScheduleResponse = try await options.withClient {
                try await options.call($0, BackupAPI.getSchedule, request, idempotent: true)
            }
            try printSchedule(response.schedule, options.output)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A new configuration-only backup schedule (with --drill: a restore drill schedule, P18).")
        @Argument(help: "Its name.") var name: String
        @Option(help: "Five-field cron expression, e.g. '0 2 * * 0' (Sunday 02:00), or @daily.") var cron: String
        @Option(name: .customLong("time-zone"), help: "IANA time zone, e.g. Europe/Paris.") var timeZone: String = "UTC"
        @Option(name: .customLong("target"), help: "What to back up (repeat): NAME, device:NAME, pair:NAME, cluster:NAME or all.")
        var targets: [String] = ["all"]
        @Flag(help: "Create it paused.") var paused = false
        @Flag(help: "Each slot drills its targets' latest good backups (rampart drill) instead of backing them up.")
        var drill = false
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_CreateScheduleRequest()
            request.schedule.drill = drill
            request.schedule.name = name
            request.schedule.cron = cron
            request.schedule.timeZone = timeZone
            request.schedule.targets = try targets.map(parseTarget)
            request.schedule.paused = paused
            let response: Rampart_Backup_V1_ScheduleResponse = try await options.withClient {
                try await options.call($0, BackupAPI.createSchedule, request)
            }
            try printSchedule(response.schedule, options.output)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a schedule's name, timing or targets.")
        @Argument(help: "Schedule name or id.") var schedule: String
        @Option(help: "New name.") var name: String?
        @Option(help: "New cron expression.") var cron: String?
        @Option(name: .customLong("time-zone"), help: "New time zone.") var timeZone: String?
        @Option(name: .customLong("target"), help: "New targets (repeat; replaces all).") var targets: [String] = []
        @OptionGroup var options: ClientOptions

        func run() async throws {
            guard name != nil || cron != nil || timeZone != nil || !targets.isEmpty else {
                throw ValidationError("name something to change")
            }
            var request = Rampart_Backup_V1_UpdateScheduleRequest()
            request.schedule = schedule
            request.name = name ?? ""
            request.cron = cron ?? ""
            request.timeZone = timeZone ?? ""
            request.targets = try targets.map(parseTarget)
            request.replaceTargets = !targets.isEmpty
            let response: Rampart_Backup_V1_ScheduleResponse = try await options.withClient {
                try await options.call($0, BackupAPI.updateSchedule, request)
            }
            try printSchedule(response.schedule, options.output)
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a schedule from firing.")
        @Argument(help: "Schedule name or id.") var schedule: String
        @OptionGroup var options: ClientOptions
        func run() async throws { try await setPaused(schedule, true, options) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a paused schedule fire again (missed slots do not run).")
        @Argument(help: "Schedule name or id.") var schedule: String
        @OptionGroup var options: ClientOptions
        func run() async throws { try await setPaused(schedule, false, options) }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a schedule.")
        @Argument(help: "Schedule name or id.") var schedule: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Backup_V1_DeleteScheduleRequest()
            request.schedule = schedule
            let response: Rampart_Backup_V1_DeleteScheduleResponse = try await options.withClient {
                try await options.call($0, BackupAPI.deleteSchedule, request)
            }
            if options.output == .json { return try printJSON(response) }
            print("deleted schedule \(schedule) (\(response.scheduleID))")
        }
    }
}

private func setPaused(_ schedule: String, _ paused: Bool, _ options: ClientOptions) async throws {
    var request = Rampart_Backup_V1_SetSchedulePausedRequest()
    request.schedule = schedule
    request.paused = paused
    let response: Rampart_Backup_V1_ScheduleResponse = try await options.withClient {
        try await options.call($0, BackupAPI.setSchedulePaused, request)
    }
    try printSchedule(response.schedule, options.output)
}

private func printSchedule(_ s: Rampart_Backup_V1_Schedule, _ output: OutputFormat) throws {
    if output == .json { return try printJSON(s) }
    var table = Table("FIELD", "VALUE")
    table.add("id", s.id)
    table.add("name", s.name)
    table.add("kind", s.drill ? "drill" : "backup")
    table.add("cron", s.cron)
    table.add("time zone", s.timeZone)
    table.add("targets", scheduleTargetsText(s, separator: ", "))
    table.add("state", s.paused ? "paused" : "active")
    table.add("next run", formatTime(s.nextRunUnixMs))
    table.add("last run", formatTime(s.lastRunUnixMs))
    print(table.render())
}

/// A schedule's targets, each that names nothing registered any more marked "(not registered)".
private func scheduleTargetsText(_ s: Rampart_Backup_V1_Schedule, separator: String) -> String {
    s.targets.map { target in
        let text = targetText(target)
        return s.missingTargets.contains(target.ref) && !target.ref.isEmpty ? text + " (not registered)" : text
    }.joined(separator: separator)
}
