import Foundation
import Postgres
import RampartBasics
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC

/// A task as planned: what to back up, or why not.
struct PlannedTask: Sendable {
    var kind: Rampart_Backup_V1_TargetKind
    var targetId: String
    var targetName: String
    /// Set when the target is refused; the task is then created finished (REFUSED) with this reason.
    var refusal: String?
    /// A restore drill of the target (P18), not a backup.
    var drill = false

    /// A target that names nothing registered: refused, with no id.
    var isUnknown: Bool { kind == .unspecified && targetId.isEmpty }
}

/// A task claimed by a worker: its lease token fences every later write.
struct ClaimedTask: Sendable {
    var id: String
    var jobId: String
    var kind: Rampart_Backup_V1_TargetKind
    var targetId: String
    var targetName: String
    var attempts: Int
    var maxAttempts: Int
    var token: Int64
    var jobCreated: Date
    /// A restore drill's task (P18), not a backup's.
    var drill = false
}

/// The backup worker's SQL; every function runs on a connection the caller holds.
enum BackupStore {
    static let source = "backup-worker"

    // MARK: jobs

    static func jobId(idempotencyKey: String, on connection: PostgresConnection) throws -> String? {
        try connection.query("SELECT id::text AS id FROM backup.jobs WHERE idempotency_key = \(idempotencyKey)")
            .first?.decode("id")
    }

    /// Inserts a job and its tasks (refused ones already finished) with their events; returns the job id.
    static func insertJob(
        origin: String, requestedBy: String, idempotencyKey: String?, tasks: [PlannedTask], on connection: PostgresConnection
    ) throws -> String {
        let jobId = UUID().uuidString.lowercased()
        let runnable = tasks.contains { $0.refusal == nil }
        let drill = tasks.contains(where: \.drill)
        try connection.execute(
            """
            INSERT INTO backup.jobs (id, state, origin, requested_by, idempotency_key, finished_at, drill)
            VALUES (\(jobId)::uuid, \(runnable ? "queued" : "failed"), \(origin), \(requestedBy), \(idempotencyKey),
                    CASE WHEN \(runnable) THEN NULL ELSE now() END, \(drill))
            """)
        for (position, task) in tasks.enumerated() {
            let taskId = UUID().uuidString.lowercased()
            try connection.execute(
                """
                INSERT INTO backup.tasks (id, job_id, position, kind, target_id, target_name, state, message, finished_at, drill)
                VALUES (\(taskId)::uuid, \(jobId)::uuid, \(position), \(task.kind.label), \(task.targetId), \(task.targetName),
                        \(task.refusal == nil ? "pending" : "refused"), \(task.refusal ?? "queued"),
                        CASE WHEN \(task.refusal != nil) THEN now() ELSE NULL END, \(task.drill))
                """)
            if let refusal = task.refusal {
                try emit(
                    "backup.task.refused", subject: taskId,
                    ["job_id": jobId, "target": task.targetName, "kind": task.kind.label, "reason": refusal], on: connection)
            }
        }
        try emit(
            "backup.job.queued", subject: jobId,
            ["origin": origin, "drill": "\(drill)", "tasks": "\(tasks.count)", "refused": "\(tasks.filter { $0.refusal != nil }.count)",
             "caller": requestedBy], on: connection)
        if !runnable {
            try emit("backup.job.failed", subject: jobId, ["reason": "every target was refused"], on: connection)
        }
        return jobId
    }

    static func job(_ id: String, on connection: PostgresConnection) throws -> Rampart_Backup_V1_Job {
        guard UUID(uuidString: id) != nil else { throw RPCError.invalidArgument("'\(id)' is not a job id") }
        let rows = try connection.query("\(unsafeRaw: jobColumns) WHERE id = \(id)::uuid")
        guard let row = rows.first else { throw RPCError.notFound("no job \(id)") }
        var job = try self.job(from: row)
        job.tasks = try tasks(jobIds: [job.id], on: connection)[job.id] ?? []
        return job
    }

    static func listJobs(limit: Int, state: Rampart_Backup_V1_JobState, on connection: PostgresConnection) throws
        -> [Rampart_Backup_V1_Job]
    {
        let filter = state == .unspecified ? "" : state.label
        let rows = try connection.query(
            "\(unsafeRaw: jobColumns) WHERE (\(filter) = '' OR state = \(filter)) ORDER BY created_at DESC LIMIT \(limit)")
        var jobs = try rows.map(job(from:))
        let tasks = try tasks(jobIds: jobs.map(\.id), on: connection)
        for index in jobs.indices { jobs[index].tasks = tasks[jobs[index].id] ?? [] }
        return jobs
    }

    private static let jobColumns = """
        SELECT id::text AS id, state, origin, requested_by, created_at, started_at, finished_at, drill FROM backup.jobs
        """

    private static func job(from row: PostgresRow) throws -> Rampart_Backup_V1_Job {
        var job = Rampart_Backup_V1_Job()
        job.id = try row.decode("id")
        job.state = Rampart_Backup_V1_JobState(label: try row.decode("state"))
        job.origin = try row.decode("origin")
        job.requestedBy = try row.decode("requested_by")
        job.createdUnixMs = millis(try row.decode("created_at", as: Date.self))
        job.startedUnixMs = try row.decodeIfPresent("started_at", as: Date.self).map(millis) ?? 0
        job.finishedUnixMs = try row.decodeIfPresent("finished_at", as: Date.self).map(millis) ?? 0
        job.drill = try row.decode("drill")
        return job
    }

    private static func tasks(jobIds: [String], on connection: PostgresConnection) throws -> [String: [Rampart_Backup_V1_Task]] {
        guard !jobIds.isEmpty else { return [:] }
        let rows = try connection.query(
            """
            SELECT t.id::text AS id, t.job_id::text AS job_id, t.kind, t.target_id, t.target_name, t.state, t.progress,
                   t.message, t.attempts, t.started_at, t.finished_at, t.drill,
                   coalesce((SELECT array_agg(b.id::text ORDER BY b.file_name) FROM backup.backups b WHERE b.task_id = t.id),
                            '{}') AS backup_ids
            FROM backup.tasks t WHERE t.job_id::text = ANY(\(jobIds)) ORDER BY t.job_id, t.position
            """)
        var result: [String: [Rampart_Backup_V1_Task]] = [:]
        for row in rows {
            var task = Rampart_Backup_V1_Task()
            task.id = try row.decode("id")
            task.jobID = try row.decode("job_id")
            task.kind = Rampart_Backup_V1_TargetKind(label: try row.decode("kind"))
            task.targetID = try row.decode("target_id")
            task.targetName = try row.decode("target_name")
            task.state = Rampart_Backup_V1_TaskState(label: try row.decode("state"))
            task.progressPercent = UInt32(try row.decode("progress", as: Int.self))
            task.message = try row.decode("message")
            task.attempts = UInt32(try row.decode("attempts", as: Int.self))
            task.startedUnixMs = try row.decodeIfPresent("started_at", as: Date.self).map(millis) ?? 0
            task.finishedUnixMs = try row.decodeIfPresent("finished_at", as: Date.self).map(millis) ?? 0
            task.backupIds = try row.decode("backup_ids", as: [String].self)
            task.drill = try row.decode("drill")
            result[task.jobID, default: []].append(task)
        }
        // A drill task's results (P18).
        let drillTasks = result.values.flatMap { $0 }.filter(\.drill).map(\.id)
        if !drillTasks.isEmpty {
            let drills = try DrillStore.byTask(drillTasks, on: connection)
            for (job, tasks) in result {
                result[job] = tasks.map { task in
                    var task = task
                    task.drills = drills[task.id] ?? []
                    return task
                }
            }
        }
        return result
    }

    /// Asks a job to stop: pending tasks are cancelled at once, running ones stop at their next step.
    static func cancel(jobId: String, requestedBy: String, on connection: PostgresConnection) throws {
        let job = try self.job(jobId, on: connection)
        guard !job.state.isFinished else {
            throw RPCError.failedPrecondition("job \(jobId) is already \(job.state.label)")
        }
        try connection.execute("UPDATE backup.jobs SET cancel_requested = true WHERE id = \(jobId)::uuid")
        let cancelled = try connection.execute(
            """
            UPDATE backup.tasks SET state = 'cancelled', message = \("cancelled by \(requestedBy)"), finished_at = now()
            WHERE job_id = \(jobId)::uuid AND state = 'pending'
            """)
        try emit("backup.job.cancel_requested", subject: jobId, ["caller": requestedBy, "pending_cancelled": "\(cancelled)"],
                 on: connection)
        try finishJobIfDone(jobId, on: connection)
    }

    // MARK: the queue

    /// Claims one runnable task (pending and due, or running with an expired lease) with SKIP LOCKED,
    /// taking a new lease whose token fences every later write of this attempt.
    static func claim(worker: String, leaseSeconds: Int, on connection: PostgresConnection) throws -> ClaimedTask? {
        try connection.transaction { connection in
            let rows = try connection.query(
                """
                UPDATE backup.tasks t
                SET state = 'running', lease_owner = \(worker), lease_token = t.lease_token + 1,
                    lease_expires = now() + make_interval(secs => \(leaseSeconds)), attempts = t.attempts + 1,
                    started_at = coalesce(t.started_at, now()), message = 'started by ' || \(worker)
                WHERE t.id = (
                    SELECT id FROM backup.tasks
                    WHERE (state = 'pending' AND not_before <= now()) OR (state = 'running' AND lease_expires < now())
                    ORDER BY not_before, position LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING t.id::text AS id, t.job_id::text AS job_id, t.kind, t.target_id, t.target_name, t.attempts,
                          t.max_attempts, t.lease_token, t.drill,
                          (SELECT created_at FROM backup.jobs j WHERE j.id = t.job_id) AS job_created
                """)
            guard let row = rows.first else { return nil }
            let task = ClaimedTask(
                id: try row.decode("id"), jobId: try row.decode("job_id"),
                kind: Rampart_Backup_V1_TargetKind(label: try row.decode("kind")), targetId: try row.decode("target_id"),
                targetName: try row.decode("target_name"), attempts: try row.decode("attempts"),
                maxAttempts: try row.decode("max_attempts"), token: try row.decode("lease_token"),
                jobCreated: try row.decode("job_created"), drill: try row.decode("drill"))
            let started = try connection.execute(
                "UPDATE backup.jobs SET state = 'running', started_at = now() WHERE id = \(task.jobId)::uuid AND state = 'queued'")
            if started == 1 {
                try emit("backup.job.started", subject: task.jobId, ["worker": worker], on: connection)
            }
            try emit(
                "backup.task.started", subject: task.id,
                ["job_id": task.jobId, "target": task.targetName, "kind": task.kind.label, "attempt": "\(task.attempts)",
                 "worker": worker, "drill": "\(task.drill)"], on: connection)
            return task
        }
    }

    /// What a lease-holder learns when it renews or reports progress.
    enum LeaseCheck: Sendable {
        case held(cancelRequested: Bool)
        case lost
    }

    /// Extends the lease and records progress, fenced by the token; tells whether the job was cancelled.
    static func renew(_ task: ClaimedTask, leaseSeconds: Int, progress: Int?, message: String?, on connection: PostgresConnection)
        throws -> LeaseCheck
    {
        let rows = try connection.query(
            """
            UPDATE backup.tasks t
            SET lease_expires = now() + make_interval(secs => \(leaseSeconds)),
                progress = coalesce(\(progress), t.progress), message = coalesce(\(message), t.message)
            WHERE t.id = \(task.id)::uuid AND t.lease_token = \(task.token) AND t.state = 'running'
            RETURNING (SELECT cancel_requested FROM backup.jobs j WHERE j.id = t.job_id) AS cancel_requested
            """)
        guard let row = rows.first else { return .lost }
        return .held(cancelRequested: try row.decode("cancel_requested"))
    }

    /// Puts a failed attempt back in the queue after `delay`, or fails the task when attempts are used up.
    /// What became of a failed attempt's task.
    enum AfterFailure: Equatable {
        /// Pending again, to be retried after the delay.
        case retrying
        /// Failed for good: the task used all its attempts.
        case failed
        /// Nothing written: the attempt's lease had already passed to another attempt (fenced).
        case leaseLost
    }

    /// Puts a failed attempt's task back to pending (or fails it after its last attempt), fenced by the
    /// attempt's lease token: an attempt whose lease was taken over writes nothing.
    static func retryOrFail(_ task: ClaimedTask, reason: String, delaySeconds: Int, on connection: PostgresConnection) throws
        -> AfterFailure
    {
        if task.attempts >= task.maxAttempts {
            let held = try finish(task, state: .taskFailed, message: "\(reason) (after \(task.attempts) attempts)", on: connection)
            return held ? .failed : .leaseLost
        }
        let updated = try connection.execute(
            """
            UPDATE backup.tasks SET state = 'pending', lease_owner = NULL, lease_expires = NULL,
                   not_before = now() + make_interval(secs => \(delaySeconds)),
                   message = \("attempt \(task.attempts) failed: \(reason); retrying in \(delaySeconds)s")
            WHERE id = \(task.id)::uuid AND lease_token = \(task.token) AND state = 'running'
            """)
        guard updated == 1 else { return .leaseLost }
        try emit(
            "backup.task.retrying", subject: task.id,
            ["job_id": task.jobId, "target": task.targetName, "reason": reason, "attempt": "\(task.attempts)"],
            on: connection)
        return .retrying
    }

    /// Fails tasks whose lease expired more often than they may be attempted (their workers died).
    static func failExhausted(on connection: PostgresConnection) throws {
        let rows = try connection.query(
            """
            UPDATE backup.tasks SET state = 'failed', finished_at = now(),
                   message = 'the worker running it stopped answering ' || attempts || ' times'
            WHERE state = 'running' AND lease_expires < now() AND attempts >= max_attempts
            RETURNING id::text AS id, job_id::text AS job_id, target_name
            """)
        for row in rows {
            let jobId: String = try row.decode("job_id")
            try emit("backup.task.failed", subject: try row.decode("id"),
                     ["job_id": jobId, "target": try row.decode("target_name"), "reason": "worker lost"], on: connection)
            try finishJobIfDone(jobId, on: connection)
        }
    }

    /// Ends a task (fenced), records its backups in the same transaction, and finishes the job when
    /// it was the last one. Returns false when the lease was lost (another worker owns the task now).
    @discardableResult
    static func finish(
        _ task: ClaimedTask, state: Rampart_Backup_V1_TaskState, message: String,
        backups: [NewBackup] = [], on connection: PostgresConnection
    ) throws -> Bool {
        let updated = try connection.execute(
            """
            UPDATE backup.tasks SET state = \(state.label), message = \(message), finished_at = now(),
                   progress = CASE WHEN \(state == .taskSucceeded || state == .taskPartiallySucceeded) THEN 100 ELSE progress END,
                   lease_expires = NULL
            WHERE id = \(task.id)::uuid AND lease_token = \(task.token) AND state = 'running'
            """)
        guard updated == 1 else { return false }
        if !backups.isEmpty { try ObjectiveStore.lockForStoring(on: connection) }
        for new in backups {
            let backup = new.record
            try insertBackup(new, on: connection)
            // P16: each device this backup holds has a good backup now; one recorded stale is fresh again.
            let devices = backup.members.isEmpty
                ? [(id: backup.ownerID, name: backup.ownerName)] : backup.members.map { (id: $0.deviceID, name: $0.deviceName) }
            try ObjectiveStore.markFresh(devices, backupId: backup.id, on: connection)
        }
        try emit(
            "backup.task.\(state.label.replacingOccurrences(of: "-", with: "_"))", subject: task.id,
            ["job_id": task.jobId, "target": task.targetName, "kind": task.kind.label, "message": message,
             "backups": "\(backups.count)"], on: connection)
        try finishJobIfDone(task.jobId, on: connection)
        return true
    }

    private static func insertBackup(_ new: NewBackup, on connection: PostgresConnection) throws {
        let backup = new.record
        let members = String(decoding: try JSONEncoder().encode(backup.members.map(StoredMember.init)), as: UTF8.self)
        let fingerprint = try new.fingerprint.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let changed = String(decoding: try JSONEncoder().encode(backup.changedFiles), as: UTF8.self)
        // One record per target and run (task): a retried task never adds a second one.
        let inserted = try connection.execute(
            """
            INSERT INTO backup.backups (id, job_id, task_id, owner_id, owner_name, role, ha_pair_id, cluster_id, file_name,
                size, sha256, object_id, software_version, software_patch, members, created_at,
                fingerprint, previous_backup_id, unchanged_from, changed_files)
            VALUES (\(backup.id)::uuid, \(backup.jobID)::uuid, \(backup.taskID)::uuid, \(backup.ownerID), \(backup.ownerName),
                \(backup.role.label), \(backup.haPairID), \(backup.clusterID), \(backup.fileName), \(Int64(backup.size)),
                \(backup.sha256), \(backup.objectID), \(backup.software.version), \(Int(backup.software.patch)),
                \(members)::jsonb, to_timestamp(\(Double(backup.createdUnixMs) / 1000)),
                \(fingerprint)::jsonb, \(backup.previousBackupID), \(backup.unchangedFrom), \(changed)::jsonb)
            ON CONFLICT ON CONSTRAINT backups_one_per_target_and_run DO NOTHING
            """)
        guard inserted == 1 else { return }
        try emit(
            "backup.stored", subject: backup.id,
            ["job_id": backup.jobID, "owner": backup.ownerName, "role": backup.role.label, "file": backup.fileName,
             "size": "\(backup.size)", "sha256": backup.sha256, "software": backup.software.version,
             "patch": "\(backup.software.patch)", "unchanged_from": backup.unchangedFrom], on: connection)
        // P17: each device whose configuration changed since its previous backup, named with the files
        // (never their contents).
        for device in ConfigComparison.changedByDevice(backup) {
            try emit(
                "backup.config.changed", subject: device.id.isEmpty ? device.name : device.id,
                ["device": device.name, "device_id": device.id, "backup_id": backup.id,
                 "previous_backup_id": backup.previousBackupID, "changed_files": device.files.joined(separator: "\n"),
                 "count": "\(device.files.count)"], on: connection)
        }
    }

    /// Finishes the job when none of its tasks is left to run, with its event.
    static func finishJobIfDone(_ jobId: String, on connection: PostgresConnection) throws {
        let job = try connection.query(
            "SELECT state, cancel_requested FROM backup.jobs WHERE id = \(jobId)::uuid FOR UPDATE")
        guard let row = job.first, !Rampart_Backup_V1_JobState(label: try row.decode("state")).isFinished else { return }
        let states = try connection.query("SELECT state FROM backup.tasks WHERE job_id = \(jobId)::uuid")
            .map { Rampart_Backup_V1_TaskState(label: try $0.decode("state")) }
        guard states.allSatisfy(BackupOutcome.isFinished) else { return }
        let outcome = BackupOutcome.job(states, cancelRequested: try row.decode("cancel_requested"))
        try connection.execute(
            "UPDATE backup.jobs SET state = \(outcome.label), finished_at = now() WHERE id = \(jobId)::uuid")
        try emit(
            "backup.job.\(outcome.topic)", subject: jobId,
            ["outcome": outcome.label, "tasks": "\(states.count)",
             "failed": "\(states.filter { $0 == .taskFailed || $0 == .refused || $0 == .taskCancelled }.count)"],
            on: connection)
    }

    // MARK: backups

    struct StoredMember: Codable {
        var deviceId: String
        var deviceName: String
        var role: String
        var fileName: String
        var size: UInt64
        var sha256: String

        init(_ member: Rampart_Backup_V1_BundleMember) {
            deviceId = member.deviceID
            deviceName = member.deviceName
            role = member.role.label
            fileName = member.fileName
            size = member.size
            sha256 = member.sha256
        }
    }

    static func listBackups(owner: String?, jobId: String?, limit: Int, on connection: PostgresConnection) throws
        -> [Rampart_Backup_V1_Backup]
    {
        try connection.query(
            """
            \(unsafeRaw: backupColumns)
            WHERE (\(owner ?? "") = '' OR owner_id = \(owner ?? "") OR owner_name = \(owner ?? "")
                   -- A cluster node's file lives inside its cluster's bundles: they are its backups too.
                   OR members @> jsonb_build_array(jsonb_build_object('deviceId', \(owner ?? "")::text))
                   OR members @> jsonb_build_array(jsonb_build_object('deviceName', \(owner ?? "")::text)))
              AND (\(jobId ?? "") = '' OR job_id::text = \(jobId ?? ""))
            ORDER BY created_at DESC, file_name LIMIT \(limit)
            """
        ).map(backup(from:))
    }

    static func backup(_ id: String, on connection: PostgresConnection) throws -> Rampart_Backup_V1_Backup {
        guard UUID(uuidString: id) != nil else { throw RPCError.invalidArgument("'\(id)' is not a backup id") }
        guard let row = try connection.query("\(unsafeRaw: backupColumns) WHERE id = \(id)::uuid").first else {
            throw RPCError.notFound("no backup \(id)")
        }
        return try backup(from: row)
    }

    /// The columns `backup(from:)` reads.
    static let backupFields = """
        id::text AS id, job_id::text AS job_id, task_id::text AS task_id, owner_id, owner_name, role, ha_pair_id,
               cluster_id, file_name, size, sha256, object_id, software_version, software_patch, members::text AS members,
               created_at, previous_backup_id, unchanged_from, changed_files::text AS changed_files
        """
    private static let backupColumns = "SELECT \(backupFields) FROM backup.backups"

    static func backup(from row: PostgresRow) throws -> Rampart_Backup_V1_Backup {
        var backup = Rampart_Backup_V1_Backup()
        backup.id = try row.decode("id")
        backup.jobID = try row.decode("job_id")
        backup.taskID = try row.decode("task_id")
        backup.ownerID = try row.decode("owner_id")
        backup.ownerName = try row.decode("owner_name")
        backup.role = roleFromLabel(try row.decode("role"))
        backup.haPairID = try row.decode("ha_pair_id")
        backup.clusterID = try row.decode("cluster_id")
        backup.fileName = try row.decode("file_name")
        backup.size = UInt64(try row.decode("size", as: Int64.self))
        backup.sha256 = try row.decode("sha256")
        backup.objectID = try row.decode("object_id")
        backup.software.version = try row.decode("software_version")
        backup.software.patch = UInt32(try row.decode("software_patch", as: Int.self))
        backup.createdUnixMs = millis(try row.decode("created_at", as: Date.self))
        let members: String = try row.decode("members")
        backup.members = try JSONDecoder().decode([StoredMember].self, from: Data(members.utf8)).map {
            var member = Rampart_Backup_V1_BundleMember()
            member.deviceID = $0.deviceId
            member.deviceName = $0.deviceName
            member.role = roleFromLabel($0.role)
            member.fileName = $0.fileName
            member.size = $0.size
            member.sha256 = $0.sha256
            return member
        }
        backup.previousBackupID = try row.decode("previous_backup_id")
        backup.unchangedFrom = try row.decode("unchanged_from")
        backup.changedFiles = try JSONDecoder().decode([String].self, from: Data(try row.decode("changed_files", as: String.self).utf8))
        return backup
    }

    // MARK: events

    static func emit(_ topic: String, subject: String, _ attributes: [String: String], on connection: PostgresConnection)
        throws
    {
        try EventOutbox.append(OutboxEvent(topic: topic, subject: subject, attributes: attributes), source: source, on: connection)
    }

    static func millis(_ date: Date) -> Int64 { date.unixMillis }
}

/// The role named by an inventory label ("ha-primary" → `.haPrimary`).
func roleFromLabel(_ label: String) -> Rampart_Inventory_V1_Role {
    Rampart_Inventory_V1_Role.allCases.first { $0.label == label && !label.isEmpty } ?? .unspecified
}
