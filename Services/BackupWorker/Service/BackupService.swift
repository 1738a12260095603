import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBasics
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC

/// The `backup` service API, served by every backup-worker instance (any instance can answer):
/// jobs (B3, B13), backups (B6), schedules (B4).
public struct BackupService: Sendable {

    private let pool: PostgresPool
    private let planner: Planner
    private let pruner: Pruner
    private let client: BusClient
    private let statuses: DeviceStatusReader

    /// The API over `pool`, asking inventory and storage through `client`; `defaultObjective` is the
    /// installation's backup objective in seconds until a worker has stored one (P16).
    public init(
        pool: PostgresPool, client: BusClient, pruner: Pruner, defaultObjective: Int64 = BackupObjective.defaultSeconds
    ) {
        self.pool = pool
        self.planner = Planner(client: client)
        self.pruner = pruner
        self.client = client
        self.statuses = DeviceStatusReader(pool: pool, client: client, defaultObjective: defaultObjective)
    }

    /// Migrates the schemas the worker writes to (`events`, `backup`).
    public static func migrate(connection: PostgresConnection, logger: Logger) throws {
        try EventOutbox.migrate(connection: connection, logger: logger)
        try Migrator.migrate(schema: "backup", migrations: BackupMigrations.all, connection: connection, logger: logger)
    }

    /// An owner with no backups must at least be registered: a typo is `NOT_FOUND`, not an empty answer.
    /// (Backups of a device since unregistered are still found by its name or id.)
    private func requireKnownOwner(_ owner: String) async throws {
        var target = Rampart_Backup_V1_Target()
        target.ref = owner
        _ = try await planner.resolve([target])
    }

    /// Plans `targets` and queues a job for them (shared by StartBackup and the scheduler).
    ///
    /// On demand (`strict`), a request that cannot start anything records nothing: an unknown target is
    /// `NOT_FOUND`, and when every target is refused (B2, B7, B8, B9) the answer is `FAILED_PRECONDITION`
    /// with the reasons. Some targets refused among runnable ones: the job runs, the refused tasks say
    /// why. A schedule's job is always recorded, so a schedule whose target went away shows it.
    func startJob(
        targets: [Rampart_Backup_V1_Target], origin: String, requestedBy: String, idempotencyKey: String?, strict: Bool = false,
        drill: Bool = false
    )
        async throws -> Rampart_Backup_V1_Job
    {
        var planner = self.planner
        planner.drill = drill
        if let key = idempotencyKey,
            let existing = try await pool.serve({ try BackupStore.jobId(idempotencyKey: key, on: $0) })
        {
            return try await pool.serve { try BackupStore.job(existing, on: $0) }
        }
        let tasks = strict ? try await planner.resolve(targets) : try await planner.plan(targets)
        if strict, !tasks.isEmpty, tasks.allSatisfy({ $0.refusal != nil }) {
            throw RPCError.failedPrecondition(
                (drill ? "nothing to drill: " : "nothing to back up: ") + tasks.map { "\($0.targetName): \($0.refusal ?? "")" }.joined(separator: "; "))
        }
        return try await pool.serve { connection in
            if let key = idempotencyKey, let existing = try BackupStore.jobId(idempotencyKey: key, on: connection) {
                return try BackupStore.job(existing, on: connection)
            }
            let id = try BackupStore.insertJob(
                origin: origin, requestedBy: requestedBy, idempotencyKey: idempotencyKey, tasks: tasks, on: connection)
            return try BackupStore.job(id, on: connection)
        }
    }

    /// The handlers, ready for a `ServiceHost`.
    public func router() -> ServiceRouter {
        var router = ServiceRouter(for: BackupAPI.self)
        router.register(BackupAPI.startBackup) { (request: Rampart_Backup_V1_StartBackupRequest, context) in
            guard request.idempotencyKey.count <= 200 else { throw RPCError.invalidArgument("idempotency key too long") }
            context.audit.note("targets", request.targets.prefix(20).map(Self.auditLabel).joined(separator: " "))
            var response = Rampart_Backup_V1_JobResponse()
            response.job = try await startJob(
                targets: request.targets, origin: "on-demand", requestedBy: context.caller,
                idempotencyKey: request.idempotencyKey.isEmpty ? nil : request.idempotencyKey, strict: true)
            context.audit.subject = response.job.id
            return response
        }
        router.register(BackupAPI.startDrill) { (request: Rampart_Backup_V1_StartDrillRequest, context) in
            guard request.idempotencyKey.count <= 200 else { throw RPCError.invalidArgument("idempotency key too long") }
            context.audit.note("targets", request.targets.prefix(20).map(Self.auditLabel).joined(separator: " "))
            var response = Rampart_Backup_V1_JobResponse()
            response.job = try await startJob(
                targets: request.targets, origin: "on-demand", requestedBy: context.caller,
                idempotencyKey: request.idempotencyKey.isEmpty ? nil : request.idempotencyKey, strict: true, drill: true)
            context.audit.subject = response.job.id
            return response
        }
        router.register(BackupAPI.listDrills) { (request: Rampart_Backup_V1_ListDrillsRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Backup_V1_ListDrillsResponse()
                response.drills = try DrillStore.list(
                    backupId: request.backupID, device: request.device, jobId: request.jobID,
                    limit: Int(request.limit == 0 ? 100 : min(request.limit, 10_000)), on: connection)
                return response
            }
        }
        router.register(BackupAPI.getJob) { (request: Rampart_Backup_V1_GetJobRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Backup_V1_JobResponse()
                response.job = try BackupStore.job(request.jobID, on: connection)
                return response
            }
        }
        router.register(BackupAPI.listJobs) { (request: Rampart_Backup_V1_ListJobsRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Backup_V1_ListJobsResponse()
                response.jobs = try BackupStore.listJobs(
                    limit: Int(request.limit == 0 ? 50 : min(request.limit, 1000)), state: request.state, on: connection)
                return response
            }
        }
        router.register(BackupAPI.cancelJob) { (request: Rampart_Backup_V1_CancelJobRequest, context) in
            context.audit.subject = request.jobID
            return try await pool.serve { connection in
                try BackupStore.cancel(jobId: request.jobID, requestedBy: context.caller, on: connection)
                var response = Rampart_Backup_V1_JobResponse()
                response.job = try BackupStore.job(request.jobID, on: connection)
                return response
            }
        }
        router.register(BackupAPI.listBackups) { (request: Rampart_Backup_V1_ListBackupsRequest, _) in
            let response = try await pool.serve { connection in
                var response = Rampart_Backup_V1_ListBackupsResponse()
                response.backups = try BackupStore.listBackups(
                    owner: request.owner.isEmpty ? nil : request.owner, jobId: request.jobID.isEmpty ? nil : request.jobID,
                    limit: Int(request.limit == 0 ? 100 : min(request.limit, 10_000)), on: connection)
                response.backups = try Self.withDrills(response.backups, on: connection)
                return response
            }
            if response.backups.isEmpty, !request.owner.isEmpty { try await requireKnownOwner(request.owner) }
            return response
        }
        router.register(BackupAPI.getBackup) { (request: Rampart_Backup_V1_GetBackupRequest, _) in
            try await pool.serve { connection in
                var response = Rampart_Backup_V1_BackupResponse()
                response.backup = try Self.withDrills([try BackupStore.backup(request.backupID, on: connection)], on: connection)[0]
                return response
            }
        }
        router.register(BackupAPI.pruneBackups) { (request: Rampart_Backup_V1_PruneBackupsRequest, context) in
            context.audit.subject = request.owner
            if request.dryRun { context.audit.note("dry_run", "true") }
            if !request.owner.isEmpty {
                let any = try await pool.serve { try BackupStore.listBackups(owner: request.owner, jobId: nil, limit: 1, on: $0) }
                if any.isEmpty { try await requireKnownOwner(request.owner) }
            }
            return try await pruner.prune(owner: request.owner.isEmpty ? nil : request.owner, dryRun: request.dryRun, caller: context.caller)
        }
        let fallbackPolicy = pruner.policy
        router.register(BackupAPI.getRetentionPolicy) { (_: Rampart_Backup_V1_GetRetentionPolicyRequest, _) in
            try await pool.serve { try RetentionStore.response(fallback: fallbackPolicy, on: $0) }
        }
        router.register(BackupAPI.setRetentionPolicy) { (request: Rampart_Backup_V1_SetRetentionPolicyRequest, context) in
            let asked = request.policy
            let policy: RetentionPolicy
            do {
                policy = try RetentionPolicy(
                    keepLast: Int(asked.keepLast), keepDaily: Int(asked.keepDaily), keepWeekly: Int(asked.keepWeekly),
                    keepMonthly: Int(asked.keepMonthly))
            } catch let error as RetentionPolicyError {
                throw RPCError.invalidArgument("retention: \(error.message)")
            }
            context.audit.note(
                "policy", "last \(policy.keepLast), daily \(policy.keepDaily), weekly \(policy.keepWeekly), monthly \(policy.keepMonthly)")
            return try await pool.serve { connection in
                try RetentionStore.store(policy, setBy: context.caller, replace: true, on: connection)
                return try RetentionStore.response(fallback: fallbackPolicy, on: connection)
            }
        }
        router.register(BackupAPI.listDeviceStatus) { (_: Rampart_Backup_V1_ListDeviceStatusRequest, _) in
            try await statuses.statuses(now: Date())
        }
        router.register(BackupAPI.setBackupObjective) { (request: Rampart_Backup_V1_SetBackupObjectiveRequest, context) in
            context.audit.subject = request.device
            guard request.clear || (1...BackupAPI.maximumObjectiveSeconds).contains(request.objectiveSeconds) else {
                throw RPCError.invalidArgument(
                    "an objective is from 1 second to 366 days, not \(request.objectiveSeconds) seconds (or clear it)")
            }
            guard !request.device.isEmpty else { throw RPCError.invalidArgument("name a device") }
            var lookup = Rampart_Inventory_V1_GetDeviceRequest()
            lookup.device = request.device
            let found: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.getDevice, lookup, timeout: .seconds(10), idempotent: true)
            let device = found.device
            context.audit.subject = device.id
            context.audit.note("device", device.name)
            context.audit.note("objective", request.clear ? "default" : DurationText.describe(seconds: request.objectiveSeconds, parts: 4))
            let defaultObjective = statuses.defaultObjective
            return try await pool.serve { connection in
                try ObjectiveStore.setObjective(
                    deviceId: device.id, seconds: request.clear ? nil : request.objectiveSeconds, caller: context.caller,
                    on: connection)
                var response = Rampart_Backup_V1_DeviceStatusResponse()
                response.status = try ObjectiveStore.statuses(
                    devices: [device], defaultObjective: defaultObjective, now: Date(), on: connection
                ).devices.first ?? Rampart_Backup_V1_DeviceBackupStatus()
                return response
            }
        }
        ScheduleHandlers(pool: pool, planner: planner).register(&router)
        return router
    }

    /// `backups` with each one's latest drill results (P18).
    static func withDrills(_ backups: [Rampart_Backup_V1_Backup], on connection: PostgresConnection) throws
        -> [Rampart_Backup_V1_Backup]
    {
        let drills = try DrillStore.latest(backupIds: backups.map(\.id), on: connection)
        return backups.map { backup in
            var backup = backup
            backup.drills = drills[backup.id] ?? []
            return backup
        }
    }

    /// A target as the audit log shows it, the way the CLI takes it ("pair:edge", "all").
    static func auditLabel(_ target: Rampart_Backup_V1_Target) -> String {
        switch target.kind {
        case .device: "device:\(target.ref)"
        case .haPair: "pair:\(target.ref)"
        case .cluster: "cluster:\(target.ref)"
        case .allDevices: "all"
        case .unspecified, .UNRECOGNIZED: target.ref
        }
    }
}
