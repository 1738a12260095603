import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC
import ServiceLifecycle

/// A schedule as stored.
struct StoredSchedule: Sendable {
    var schedule: Rampart_Backup_V1_Schedule
    var changed: Date
    var lastRun: Date?

    struct Target: Codable {
        var kind: String
        var ref: String?
    }

    static func targetsJSON(_ targets: [Rampart_Backup_V1_Target]) throws -> String {
        let stored = targets.map { Target(kind: $0.kind.label, ref: $0.ref.isEmpty ? nil : $0.ref) }
        return String(decoding: try JSONEncoder().encode(stored), as: UTF8.self)
    }

    /// `names` as a JSON array.
    static func namesJSON(_ names: [String]) throws -> String {
        String(decoding: try JSONEncoder().encode(names), as: UTF8.self)
    }

    static func targets(_ json: String) throws -> [Rampart_Backup_V1_Target] {
        try JSONDecoder().decode([Target].self, from: Data(json.utf8)).map {
            var target = Rampart_Backup_V1_Target()
            target.kind = Rampart_Backup_V1_TargetKind(label: $0.kind)
            target.ref = $0.ref ?? ""
            return target
        }
    }
}

/// Schedule rows and their validation.
enum ScheduleStore {
    private static let columns = """
        SELECT id::text AS id, name, cron, time_zone, targets::text AS targets, paused, last_run, created_at, changed_at,
            missing_targets::text AS missing_targets, drill
        FROM backup.schedules
        """

    static func all(on connection: PostgresConnection) throws -> [StoredSchedule] {
        try connection.query("\(unsafeRaw: columns) ORDER BY name").map(schedule(from:))
    }

    static func one(_ reference: String, on connection: PostgresConnection) throws -> StoredSchedule {
        let id = UUID(uuidString: reference)?.uuidString.lowercased() ?? ""
        guard let row = try connection.query(
            "\(unsafeRaw: columns) WHERE id::text = \(id) OR name = \(reference) FOR UPDATE").first
        else { throw RPCError.notFound("no schedule '\(reference)'") }
        return try schedule(from: row)
    }

    private static func schedule(from row: PostgresRow) throws -> StoredSchedule {
        var schedule = Rampart_Backup_V1_Schedule()
        schedule.id = try row.decode("id")
        schedule.name = try row.decode("name")
        schedule.cron = try row.decode("cron")
        schedule.timeZone = try row.decode("time_zone")
        schedule.targets = try StoredSchedule.targets(try row.decode("targets"))
        schedule.paused = try row.decode("paused")
        schedule.drill = try row.decode("drill")
        schedule.missingTargets = try JSONDecoder().decode([String].self, from: Data(try row.decode("missing_targets", as: String.self).utf8))
        let lastRun = try row.decodeIfPresent("last_run", as: Date.self)
        schedule.lastRunUnixMs = lastRun.map(BackupStore.millis) ?? 0
        schedule.createdUnixMs = BackupStore.millis(try row.decode("created_at", as: Date.self))
        if !schedule.paused, let cron = try? CronExpression(schedule.cron), let zone = TimeZone(identifier: schedule.timeZone),
            let next = cron.nextFire(after: Date(), in: zone)
        {
            schedule.nextRunUnixMs = BackupStore.millis(next)
        }
        return StoredSchedule(schedule: schedule, changed: try row.decode("changed_at"), lastRun: lastRun)
    }

    /// Checks a schedule's name, cron expression, time zone and targets.
    static func validate(_ schedule: Rampart_Backup_V1_Schedule) throws {
        guard !schedule.name.isEmpty, schedule.name.count <= 64,
            schedule.name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) })
        else {
            throw RPCError.invalidArgument("schedule name must be 1 to 64 letters, digits, '-', '_' or '.'")
        }
        let cron: CronExpression
        do {
            cron = try CronExpression(schedule.cron)
        } catch {
            throw RPCError.invalidArgument("cron '\(schedule.cron)': \(error.message)")
        }
        guard let zone = TimeZone(identifier: schedule.timeZone) else {
            throw RPCError.invalidArgument("unknown time zone '\(schedule.timeZone)' (use an IANA name such as Europe/Paris)")
        }
        guard cron.nextFire(after: Date(), in: zone) != nil else {
            throw RPCError.invalidArgument(
                "cron '\(schedule.cron)' never fires: no time matches it in the next \(CronExpression.horizonYears) years "
                    + "(e.g. a day that month never has)")
        }
        guard !schedule.targets.isEmpty else { throw RPCError.invalidArgument("a schedule needs at least one target") }
        for target in schedule.targets where target.kind != .allDevices && target.ref.isEmpty {
            throw RPCError.invalidArgument("a \(target.kind.label.isEmpty ? "target" : target.kind.label) target needs a name or id")
        }
    }
}

/// Schedule methods of the `backup` service.
struct ScheduleHandlers: Sendable {
    let pool: PostgresPool
    /// Resolves a schedule's targets when it is created or its targets change: a typo is `NOT_FOUND`.
    let planner: Planner

    /// Emits the schedule change and names it in the call's audit record.
    private static func emit(
        _ topic: String, _ schedule: Rampart_Backup_V1_Schedule, _ context: RequestContext, on connection: PostgresConnection
    ) throws {
        context.audit.subject = schedule.id
        context.audit.note("schedule", schedule.name)
        context.audit.note("change", String(topic.split(separator: ".").last ?? ""))
        try BackupStore.emit(
            topic, subject: schedule.id,
            ["schedule": schedule.name, "cron": schedule.cron, "time_zone": schedule.timeZone,
             "paused": "\(schedule.paused)", "caller": context.caller], on: connection)
    }

    func register(_ router: inout ServiceRouter) {
        router.register(BackupAPI.createSchedule) { (request: Rampart_Backup_V1_CreateScheduleRequest, context) in
            var schedule = request.schedule
            if schedule.timeZone.isEmpty { schedule.timeZone = "UTC" }
            try ScheduleStore.validate(schedule)
            var resolver = planner
            resolver.drill = schedule.drill
            _ = try await resolver.resolve(schedule.targets)
            let candidate = schedule
            return try await pool.serve { connection in
                let id = UUID().uuidString.lowercased()
                do {
                    try connection.execute(
                        """
                        INSERT INTO backup.schedules (id, name, cron, time_zone, targets, paused, drill)
                        VALUES (\(id)::uuid, \(candidate.name), \(candidate.cron), \(candidate.timeZone),
                                \(try StoredSchedule.targetsJSON(candidate.targets))::jsonb, \(candidate.paused),
                                \(candidate.drill))
                        """)
                } catch let error as PostgresError where error.isUniqueViolation {
                    throw RPCError.alreadyExists("a schedule named \(candidate.name) already exists")
                }
                var response = Rampart_Backup_V1_ScheduleResponse()
                response.schedule = try ScheduleStore.one(id, on: connection).schedule
                try Self.emit("backup.schedule.created", response.schedule, context, on: connection)
                return response
            }
        }
        router.register(BackupAPI.listSchedules) { (_: Rampart_Backup_V1_ListSchedulesRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Backup_V1_ListSchedulesResponse()
                response.schedules = try ScheduleStore.all(on: connection).map(\.schedule)
                return response
            }
        }
        router.register(BackupAPI.getSchedule) { (request: Rampart_Backup_V1_GetScheduleRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Backup_V1_ScheduleResponse()
                response.schedule = try ScheduleStore.one(request.schedule, on: connection).schedule
                return response
            }
        }
        router.register(BackupAPI.updateSchedule) { (request: Rampart_Backup_V1_UpdateScheduleRequest, context) in
            if request.replaceTargets, !request.targets.isEmpty { _ = try await planner.resolve(request.targets) }
            return try await pool.serve { connection in
                var schedule = try ScheduleStore.one(request.schedule, on: connection).schedule
                let timingChanged = (!request.cron.isEmpty && request.cron != schedule.cron)
                    || (!request.timeZone.isEmpty && request.timeZone != schedule.timeZone)
                if !request.name.isEmpty { schedule.name = request.name }
                if !request.cron.isEmpty { schedule.cron = request.cron }
                if !request.timeZone.isEmpty { schedule.timeZone = request.timeZone }
                if request.replaceTargets { schedule.targets = request.targets }
                try ScheduleStore.validate(schedule)
                do {
                    try connection.execute(
                        """
                        UPDATE backup.schedules SET name = \(schedule.name), cron = \(schedule.cron),
                            time_zone = \(schedule.timeZone), targets = \(try StoredSchedule.targetsJSON(schedule.targets))::jsonb,
                            changed_at = CASE WHEN \(timingChanged) THEN now() ELSE changed_at END
                        WHERE id = \(schedule.id)::uuid
                        """)
                } catch let error as PostgresError where error.isUniqueViolation {
                    throw RPCError.alreadyExists("a schedule named \(schedule.name) already exists")
                }
                var response = Rampart_Backup_V1_ScheduleResponse()
                response.schedule = try ScheduleStore.one(schedule.id, on: connection).schedule
                try Self.emit("backup.schedule.updated", response.schedule, context, on: connection)
                return response
            }
        }
        router.register(BackupAPI.setSchedulePaused) { (request: Rampart_Backup_V1_SetSchedulePausedRequest, context) in
            try await pool.serve { connection in
                let schedule = try ScheduleStore.one(request.schedule, on: connection).schedule
                // Resuming counts as a change of timing: slots missed while paused do not run.
                try connection.execute(
                    """
                    UPDATE backup.schedules SET paused = \(request.paused),
                        changed_at = CASE WHEN \(!request.paused) AND paused THEN now() ELSE changed_at END
                    WHERE id = \(schedule.id)::uuid
                    """)
                var response = Rampart_Backup_V1_ScheduleResponse()
                response.schedule = try ScheduleStore.one(schedule.id, on: connection).schedule
                try Self.emit(request.paused ? "backup.schedule.paused" : "backup.schedule.resumed", response.schedule,
                              context, on: connection)
                return response
            }
        }
        router.register(BackupAPI.deleteSchedule) { (request: Rampart_Backup_V1_DeleteScheduleRequest, context) in
            try await pool.serve { connection in
                let schedule = try ScheduleStore.one(request.schedule, on: connection).schedule
                try connection.execute("DELETE FROM backup.schedules WHERE id = \(schedule.id)::uuid")
                try Self.emit("backup.schedule.deleted", schedule, context, on: connection)
                var response = Rampart_Backup_V1_DeleteScheduleResponse()
                response.scheduleID = schedule.id
                return response
            }
        }
    }
}

/// Fires schedules: every tick, each due slot becomes one job however many workers run, because
/// the slot is recorded in `backup.schedule_runs` (primary key schedule + slot) in the job's own
/// transaction. Missed slots follow `MissedSlotPolicy.runOnceNow` (docs/backups.md).
public final class Scheduler: Service, Sendable {
    private let pool: PostgresPool
    private let planner: Planner
    private let interval: Duration
    private let targetCheckInterval: Duration
    private let logger: Logger
    private let now: @Sendable () -> Date

    /// A scheduler checking for due slots every `interval` and whether every schedule's targets are
    /// still registered every `targetCheckInterval`; `now` is the clock (injected in tests).
    public init(
        pool: PostgresPool, client: BusClient, interval: Duration = .seconds(15), targetCheckInterval: Duration = .seconds(60),
        logger: Logger, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.pool = pool
        self.planner = Planner(client: client)
        self.interval = interval
        self.targetCheckInterval = targetCheckInterval
        self.logger = logger
        self.now = now
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            let clock = ContinuousClock()
            var lastCheck: ContinuousClock.Instant?
            while !Task.isCancelled {
                do {
                    try await tick()
                    if lastCheck.map({ clock.now - $0 >= targetCheckInterval }) ?? true {
                        lastCheck = clock.now
                        try await checkTargets()
                    }
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("scheduler tick failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Records, for every schedule, which of its targets name nothing registered any more; a change is
    /// published in the same transaction (`backup.schedule.target-missing`, `backup.schedule.target-found`,
    /// once each however many workers check: the row is updated only from the state it was read in).
    /// Returns the schedules whose missing targets changed in this call.
    @discardableResult
    public func checkTargets() async throws -> [String] {
        let schedules = try await database { try await pool.withConnection { try ScheduleStore.all(on: $0) } }
        var changed: [String] = []
        for stored in schedules {
            let schedule = stored.schedule
            let missing: [String]
            do {
                missing = try await planner.missing(schedule.targets)
            } catch let error as RPCError {
                logger.warning("cannot check a schedule's targets", metadata: ["schedule": "\(schedule.name)", "error": "\(error)"])
                continue
            }
            let before = schedule.missingTargets
            guard missing != before else { continue }
            let updated = try await pool.serve { connection -> Bool in
                let rows = try connection.execute(
                    """
                    UPDATE backup.schedules SET missing_targets = \(try StoredSchedule.namesJSON(missing))::jsonb
                    WHERE id = \(schedule.id)::uuid AND missing_targets = \(try StoredSchedule.namesJSON(before))::jsonb
                    """)
                guard rows == 1 else { return false }
                for target in missing where !before.contains(target) {
                    try BackupStore.emit(
                        "backup.schedule.target-missing", subject: schedule.id,
                        ["schedule": schedule.name, "target": target, "caller": "scheduler"], on: connection)
                }
                for target in before where !missing.contains(target) {
                    try BackupStore.emit(
                        "backup.schedule.target-found", subject: schedule.id,
                        ["schedule": schedule.name, "target": target, "caller": "scheduler"], on: connection)
                }
                return true
            }
            if updated {
                logger.warning(
                    "a schedule's targets changed: some name nothing registered",
                    metadata: ["schedule": "\(schedule.name)", "missing": "\(missing)", "before": "\(before)"])
                changed.append(schedule.name)
            }
        }
        return changed
    }

    /// Starts a job for every schedule with a due slot; returns the jobs this call created.
    @discardableResult
    public func tick() async throws -> [String] {
        let schedules = try await database { try await pool.withConnection { try ScheduleStore.all(on: $0) } }
        var created: [String] = []
        for stored in schedules where !stored.schedule.paused {
            guard let cron = try? CronExpression(stored.schedule.cron),
                let zone = TimeZone(identifier: stored.schedule.timeZone)
            else { continue }
            let (slot, _) = cron.dueSlots(
                lastRun: stored.lastRun, created: stored.changed, now: now(), in: zone, policy: .runOnceNow)
            guard let slot else { continue }
            let tasks: [PlannedTask]
            do {
                var slotPlanner = planner
                slotPlanner.drill = stored.schedule.drill  // P18: a drill schedule's slot drills its targets
                tasks = try await slotPlanner.plan(stored.schedule.targets)
            } catch let error as RPCError {
                // Inventory unreachable, say: the slot is not taken, the next tick tries again; other
                // schedules still run.
                logger.warning("cannot plan a due schedule; tried again at the next tick",
                               metadata: ["schedule": "\(stored.schedule.name)", "error": "\(error)"])
                continue
            }
            let schedule = stored.schedule
            let jobId = try await pool.serve { connection -> String? in
                let jobId = try BackupStore.insertJobIfSlotFree(
                    scheduleId: schedule.id, slot: slot, origin: "schedule:\(schedule.name)", tasks: tasks, on: connection)
                try connection.execute(
                    """
                    UPDATE backup.schedules SET last_run = greatest(coalesce(last_run, \(slot)), \(slot))
                    WHERE id = \(schedule.id)::uuid
                    """)
                return jobId
            }
            if let jobId {
                logger.info("scheduled backup started", metadata: ["schedule": "\(schedule.name)", "slot": "\(slot)", "job": "\(jobId)"])
                created.append(jobId)
            }
        }
        return created
    }
}

extension BackupStore {
    /// Records `slot` of a schedule and queues its job, unless another worker already did.
    static func insertJobIfSlotFree(
        scheduleId: String, slot: Date, origin: String, tasks: [PlannedTask], on connection: PostgresConnection
    ) throws -> String? {
        let claimed = try connection.execute(
            """
            INSERT INTO backup.schedule_runs (schedule_id, slot, job_id)
            VALUES (\(scheduleId)::uuid, \(slot), '00000000-0000-0000-0000-000000000000')
            ON CONFLICT DO NOTHING
            """)
        guard claimed == 1 else { return nil }
        let jobId = try insertJob(origin: origin, requestedBy: "scheduler", idempotencyKey: nil, tasks: tasks, on: connection)
        try connection.execute(
            "UPDATE backup.schedule_runs SET job_id = \(jobId)::uuid WHERE schedule_id = \(scheduleId)::uuid AND slot = \(slot)")
        return jobId
    }
}
