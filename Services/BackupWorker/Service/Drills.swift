import Crypto
import Foundation
import Logging
import Postgres
import RampartAPI
import RampartArchive
import RampartBasics
import RampartBus
import RampartDatabase
import RampartInventory
import RampartProto
import RampartRPC
import SwiftProtobuf
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Restore drills (P18): a drill task restores each of its devices' latest good backup onto a throwaway
// replacement — a `device-agent drill` child process in a scratch folder, never on the bus — and records
// whether it would restore. docs/drills.md.

/// What a drill decides from what it found. Pure.
enum DrillVerdict {
    /// Pre-restore checks that describe the live fleet, not the backup: reported, never failing a drill
    /// (R12's original still connected, R7/R8's order of restores under way).
    static let advisoryChecks: Set<String> = ["original disconnected", "order"]

    /// The coordinator's `CheckRestore` answer as drill checks ("pre-restore: NAME"), the advisory ones marked.
    static func preRestore(_ response: Rampart_Restore_V1_CheckRestoreResponse) -> [Rampart_Backup_V1_DrillCheck] {
        response.checks.map { found in
            var check = Rampart_Backup_V1_DrillCheck()
            check.name = "pre-restore: \(found.name)"
            check.passed = found.passed
            check.detail = found.passed ? "\(found.detail) (\(found.rules))" : found.reasons.joined(separator: "; ")
            check.advisory = advisoryChecks.contains(found.name)
            return check
        }
    }

    /// A check named `name`.
    static func check(_ name: String, passed: Bool, _ detail: String) -> Rampart_Backup_V1_DrillCheck {
        var check = Rampart_Backup_V1_DrillCheck()
        check.name = name
        check.passed = passed
        check.detail = detail
        return check
    }

    /// Passed when no check that is not advisory failed; the reason names each failed one.
    static func decide(_ checks: [Rampart_Backup_V1_DrillCheck]) -> (passed: Bool, reason: String) {
        let failed = checks.filter { !$0.passed && !$0.advisory }
        return (failed.isEmpty, failed.map { "\($0.name): \($0.detail)" }.joined(separator: "; "))
    }

    /// The drill task's end from its devices' results and the devices that had no good backup to drill:
    /// succeeded when every device's backup is restorable, partially when some are, failed when none is.
    static func outcome(_ results: [Rampart_Backup_V1_DrillResult], missing: [String])
        -> (state: Rampart_Backup_V1_TaskState, message: String)
    {
        let passed = results.filter(\.passed).map(\.deviceName)
        var failed = results.filter { !$0.passed }.map { "\($0.deviceName) (\($0.reason))" }
        failed += missing.map { "\($0) (no good backup to drill)" }
        var parts: [String] = []
        if !passed.isEmpty { parts.append("restorable: " + passed.joined(separator: ", ")) }
        if !failed.isEmpty { parts.append("not restorable: " + failed.joined(separator: "; ")) }
        let message = parts.joined(separator: "; ")
        if failed.isEmpty, !passed.isEmpty { return (.taskSucceeded, message) }
        if passed.isEmpty { return (.taskFailed, message.isEmpty ? "nothing to drill" : message) }
        return (.taskPartiallySucceeded, message)
    }

    /// The replacement's facts as the restore coordinator takes them: the original's hardware and
    /// software (interfaces added up by type), the drill's serial.
    static func replacementFacts(_ device: Rampart_Inventory_V1_Device, serial: String) -> Rampart_Restore_V1_DeviceFacts {
        var facts = Rampart_Restore_V1_DeviceFacts()
        facts.serial = serial
        facts.model = device.model
        facts.platform = device.platform.label
        facts.hypervisor = device.hypervisor.label
        facts.software = device.software
        facts.networkModules = device.networkModules
        for group in device.interfaces { facts.interfaces[group.type, default: 0] += group.count }
        return facts
    }

    /// A serial no appliance has: "DRILL" and ten random hex digits.
    static func drillSerial() -> String {
        "DRILL" + String(format: "%010llX", UInt64.random(in: 0..<(1 << 40)))
    }
}

/// The drill results in `backup.drills`; every function runs on a connection the caller holds.
enum DrillStore {
    struct StoredCheck: Codable {
        var name: String
        var passed: Bool
        var detail: String
        var advisory: Bool
    }

    /// Records `results` with their events (`backup.drill.passed` / `.failed`), in the caller's transaction.
    static func record(_ results: [Rampart_Backup_V1_DrillResult], on connection: PostgresConnection) throws {
        for result in results {
            let checks = String(
                decoding: try JSONEncoder().encode(
                    result.checks.map { StoredCheck(name: $0.name, passed: $0.passed, detail: $0.detail, advisory: $0.advisory) }),
                as: UTF8.self)
            try connection.execute(
                """
                INSERT INTO backup.drills (id, backup_id, device_id, device_name, file_name, passed, reason, checks, duration_ms,
                    job_id, task_id)
                VALUES (\(UUID().uuidString.lowercased())::uuid, \(result.backupID)::uuid, \(result.deviceID), \(result.deviceName),
                    \(result.fileName), \(result.passed), \(result.reason), \(checks)::jsonb, \(result.durationMs),
                    \(result.jobID)::uuid, \(result.taskID)::uuid)
                """)
            try BackupStore.emit(
                result.passed ? "backup.drill.passed" : "backup.drill.failed", subject: result.backupID,
                ["device": result.deviceName, "device_id": result.deviceID, "backup_id": result.backupID,
                 "file": result.fileName, "reason": result.reason, "job_id": result.jobID, "task_id": result.taskID,
                 "duration_ms": "\(result.durationMs)"], on: connection)
        }
    }

    private static let columns = """
        SELECT backup_id::text AS backup_id, device_id, device_name, file_name, passed, reason, checks::text AS checks,
               duration_ms, job_id::text AS job_id, task_id::text AS task_id, drilled_at
        FROM backup.drills
        """

    private static func result(from row: PostgresRow) throws -> Rampart_Backup_V1_DrillResult {
        var result = Rampart_Backup_V1_DrillResult()
        result.backupID = try row.decode("backup_id")
        result.deviceID = try row.decode("device_id")
        result.deviceName = try row.decode("device_name")
        result.fileName = try row.decode("file_name")
        result.passed = try row.decode("passed")
        result.reason = try row.decode("reason")
        result.durationMs = try row.decode("duration_ms", as: Int64.self)
        result.jobID = try row.decode("job_id")
        result.taskID = try row.decode("task_id")
        result.drilledUnixMs = BackupStore.millis(try row.decode("drilled_at", as: Date.self))
        let checks: String = try row.decode("checks")
        result.checks = try JSONDecoder().decode([StoredCheck].self, from: Data(checks.utf8)).map {
            var check = Rampart_Backup_V1_DrillCheck()
            check.name = $0.name
            check.passed = $0.passed
            check.detail = $0.detail
            check.advisory = $0.advisory
            return check
        }
        return result
    }

    /// The latest drill of each (backup, device) of `backupIds`, by backup id.
    static func latest(backupIds: [String], on connection: PostgresConnection) throws -> [String: [Rampart_Backup_V1_DrillResult]] {
        guard !backupIds.isEmpty else { return [:] }
        let rows = try connection.query(
            """
            SELECT * FROM (\(unsafeRaw: columns) WHERE backup_id::text = ANY(\(backupIds))) d
            WHERE NOT EXISTS (SELECT 1 FROM backup.drills n WHERE n.backup_id::text = d.backup_id AND n.device_id = d.device_id
                              AND n.drilled_at > d.drilled_at)
            ORDER BY device_name
            """)
        var byBackup: [String: [Rampart_Backup_V1_DrillResult]] = [:]
        for row in rows {
            let result = try result(from: row)
            byBackup[result.backupID, default: []].append(result)
        }
        return byBackup
    }

    /// Each device's latest drill (of any of its backups), by device id.
    static func lastDrills(deviceIds: [String], on connection: PostgresConnection) throws -> [String: Rampart_Backup_V1_DrillResult] {
        guard !deviceIds.isEmpty else { return [:] }
        let rows = try connection.query(
            """
            SELECT DISTINCT ON (device_id) * FROM (\(unsafeRaw: columns) WHERE device_id = ANY(\(deviceIds))) d
            ORDER BY device_id, drilled_at DESC
            """)
        var result: [String: Rampart_Backup_V1_DrillResult] = [:]
        for row in rows {
            let drill = try self.result(from: row)
            result[drill.deviceID] = drill
        }
        return result
    }

    /// Drill results, newest first.
    static func list(backupId: String, device: String, jobId: String, limit: Int, on connection: PostgresConnection) throws
        -> [Rampart_Backup_V1_DrillResult]
    {
        if !backupId.isEmpty, UUID(uuidString: backupId) == nil {
            throw RPCError.invalidArgument("'\(backupId)' is not a backup id")
        }
        if !jobId.isEmpty, UUID(uuidString: jobId) == nil { throw RPCError.invalidArgument("'\(jobId)' is not a job id") }
        return try connection.query(
            """
            \(unsafeRaw: columns)
            WHERE (\(backupId) = '' OR backup_id::text = \(backupId))
              AND (\(device) = '' OR device_id = \(device) OR device_name = \(device))
              AND (\(jobId) = '' OR job_id::text = \(jobId))
            ORDER BY drilled_at DESC, device_name LIMIT \(limit)
            """
        ).map(result(from:))
    }

    /// The drills of tasks `taskIds`, by task id.
    static func byTask(_ taskIds: [String], on connection: PostgresConnection) throws -> [String: [Rampart_Backup_V1_DrillResult]] {
        guard !taskIds.isEmpty else { return [:] }
        var result: [String: [Rampart_Backup_V1_DrillResult]] = [:]
        for row in try connection.query(
            "\(unsafeRaw: columns) WHERE task_id::text = ANY(\(taskIds)) ORDER BY drilled_at, device_name")
        {
            let drill = try self.result(from: row)
            result[drill.taskID, default: []].append(drill)
        }
        return result
    }

    /// "BACKUP/DEVICE" of every (backup, device) whose latest drill failed: not a good backup of that device.
    static func failedKeys(on connection: PostgresConnection) throws -> Set<String> {
        Set(
            try connection.query(
                """
                SELECT DISTINCT ON (backup_id, device_id) backup_id::text AS backup_id, device_id, passed FROM backup.drills
                ORDER BY backup_id, device_id, drilled_at DESC
                """
            ).compactMap { row -> String? in
                try row.decode("passed", as: Bool.self) ? nil : "\(try row.decode("backup_id", as: String.self))/\(try row.decode("device_id", as: String.self))"
            })
    }
}

/// Runs one drill task: each of its devices' latest good backup, read from storage, restored by a
/// `device-agent drill` child in a scratch folder (mode 0700, removed afterwards: it holds decrypted
/// keys), with the restore coordinator's `CheckRestore` (which records nothing and takes no lease).
struct DrillRunner: Sendable {
    let client: BusClient
    let pool: PostgresPool
    let logger: Logger
    /// The `device-agent` executable.
    var deviceAgentPath: String
    /// Where scratch folders are made.
    var scratchRoot = FileManager.default.temporaryDirectory.path
    /// The longest one child may take.
    var childTimeout = Duration.seconds(300)
    private static let callTimeout = Duration.seconds(30)

    /// A storage or archive problem that is a finding about the backup, not a reason to try again.
    struct Finding: Error {
        var check: Rampart_Backup_V1_DrillCheck
    }

    func run(_ task: ClaimedTask, progress: TaskProgress) async throws -> TaskResult {
        let devices = try await devices(of: task)
        let ids = devices.map(\.id)
        let backups = try await pool.serve { connection -> [String: Rampart_Backup_V1_Backup] in
            let good = try ObjectiveStore.lastGood(deviceIds: ids, on: connection)
            var result: [String: Rampart_Backup_V1_Backup] = [:]
            for (device, backup) in good { result[device] = try BackupStore.backup(backup.id, on: connection) }
            return result
        }
        let scratch = try Self.makeScratch(in: scratchRoot)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var results: [Rampart_Backup_V1_DrillResult] = []
        var missing: [String] = []
        var bundles: [String: String] = [:]  // backup id → the bundle's file in the scratch folder
        for (index, device) in devices.enumerated() {
            try Task.checkCancellation()
            let share = { (percent: Int, message: String) in
                progress.update(percent: (index * 100 + percent) / devices.count, message: "\(device.name): \(message)")
            }
            guard let backup = backups[device.id] else {
                missing.append(device.name)
                continue
            }
            results.append(
                try await drill(device, backup: backup, task: task, scratch: scratch, bundles: &bundles, progress: share))
        }
        let (state, message) = DrillVerdict.outcome(results, missing: missing)
        return .drilled(state: state, message: message, results: results)
    }

    /// The devices a task drills: the device, both peers, or every node (control node first).
    private func devices(of task: ClaimedTask) async throws -> [Rampart_Inventory_V1_Device] {
        switch task.kind {
        case .device:
            var request = Rampart_Inventory_V1_GetDeviceRequest()
            request.device = task.targetId
            let response: Rampart_Inventory_V1_DeviceResponse = try await call(InventoryAPI.getDevice, request)
            return [response.device]
        case .haPair:
            var request = Rampart_Inventory_V1_GetHaPairRequest()
            request.pair = task.targetId
            let pair: Rampart_Inventory_V1_HaPairResponse = try await call(InventoryAPI.getHaPair, request)
            return [pair.pair.primaryID, pair.pair.secondaryID].compactMap { id in pair.devices.first { $0.id == id } }
        case .cluster:
            var request = Rampart_Inventory_V1_GetClusterRequest()
            request.cluster = task.targetId
            let cluster: Rampart_Inventory_V1_ClusterResponse = try await call(InventoryAPI.getCluster, request)
            let (control, data) = try Planner.clusterNodes(cluster).get()
            return [control] + data
        default:
            throw RPCError(.internal, "drill task \(task.id) has no runnable kind")
        }
    }

    /// One device's drill of `backup`.
    private func drill(
        _ device: Rampart_Inventory_V1_Device, backup: Rampart_Backup_V1_Backup, task: ClaimedTask, scratch: String,
        bundles: inout [String: String], progress: (Int, String) -> Void
    ) async throws -> Rampart_Backup_V1_DrillResult {
        let clock = ContinuousClock()
        let start = clock.now
        var result = Rampart_Backup_V1_DrillResult()
        result.backupID = backup.id
        result.deviceID = device.id
        result.deviceName = device.name
        result.jobID = task.jobId
        result.taskID = task.id
        result.fileName = backup.fileName
        var checks: [Rampart_Backup_V1_DrillCheck] = []
        func finish() -> Rampart_Backup_V1_DrillResult {
            result.checks = checks
            let verdict = DrillVerdict.decide(checks)
            result.passed = verdict.passed
            result.reason = verdict.reason
            result.durationMs = Self.milliseconds(clock.now - start)
            result.drilledUnixMs = Date().unixMillis
            logger.log(
                level: result.passed ? .info : .warning, result.passed ? "drill passed" : "drill failed",
                metadata: ["device": "\(device.name)", "backup": "\(backup.id)", "reason": "\(result.reason)",
                           "duration_ms": "\(result.durationMs)"])
            return result
        }

        // The file, from storage (a cluster node's out of its bundle).
        progress(5, "reading \(backup.fileName) from storage")
        let archivePath: String
        let expected: String
        do {
            if backup.members.isEmpty {
                archivePath = scratch + "/" + UUID().uuidString.lowercased() + ".tar"
                try await read(backup, to: archivePath)
                expected = backup.sha256
            } else {
                guard let member = backup.members.first(where: { $0.deviceID == device.id }) else {
                    throw Finding(
                        check: DrillVerdict.check(
                            "storage", passed: false, "bundle \(backup.fileName) holds no file of \(device.name)"))
                }
                let bundle: String
                if let read = bundles[backup.id] {
                    bundle = read
                } else {
                    bundle = scratch + "/" + UUID().uuidString.lowercased() + ".tar.gz"
                    try await read(backup, to: bundle)
                    bundles[backup.id] = bundle
                }
                archivePath = scratch + "/" + UUID().uuidString.lowercased() + ".tar"
                do {
                    try Self.extract(member.fileName, from: bundle, to: archivePath)
                } catch {
                    throw Finding(
                        check: DrillVerdict.check(
                            "storage", passed: false, "\(member.fileName) cannot be taken out of \(backup.fileName): \(error)"))
                }
                result.fileName = member.fileName
                expected = member.sha256
            }
        } catch let finding as Finding {
            checks.append(finding.check)
            return finish()
        }
        checks.append(
            DrillVerdict.check(
                "storage", passed: true,
                "\(backup.fileName) read, \(backup.size) bytes, SHA-256 \(backup.sha256)"
                    + (backup.members.isEmpty ? "" : "; \(result.fileName) taken out of it")))
        defer { unlink(archivePath) }

        // The restore onto a throwaway replacement, in a child process.
        progress(30, "restoring \(result.fileName) onto a throwaway replacement")
        let serial = DrillVerdict.drillSerial()
        let report = try await runChild(
            device: device, serial: serial, archivePath: archivePath, fileName: result.fileName, sha256: expected,
            scratch: scratch)
        let childChecks = report.checks
        logger.debug(
            "device-agent drill ended",
            metadata: ["device": "\(device.name)", "passed": "\(report.passed)", "init_ms": "\(report.initMs)",
                       "restore_ms": "\(report.restoreMs)", "check_ms": "\(report.checkMs)", "total_ms": "\(report.totalMs)"])
        // The pre-restore checks, as the coordinator would make them for this replacement (nothing recorded).
        if !report.manifestJson.isEmpty {
            progress(80, "pre-restore checks")
            var request = Rampart_Restore_V1_RequestLeaseRequest()
            request.manifestJson = report.manifestJson
            request.archiveSha256 = report.archiveSha256
            request.archiveFileName = result.fileName
            request.facts = DrillVerdict.replacementFacts(device, serial: serial)
            request.cliUser = "rampart-drill"
            do {
                let answer: Rampart_Restore_V1_CheckRestoreResponse = try await client.call(
                    RestoreAPI.checkRestore, request, timeout: Self.callTimeout, idempotent: true)
                checks += DrillVerdict.preRestore(answer)
            } catch let error as RPCError where [.invalidArgument, .failedPrecondition].contains(error.code) {
                checks.append(DrillVerdict.check("pre-restore", passed: false, error.message))
            }
        } else {
            checks.append(
                DrillVerdict.check("pre-restore", passed: false, "not asked: the archive's manifest could not be read"))
        }
        checks += childChecks
        progress(100, "checked")
        return finish()
    }

    /// Reads `backup`'s object from storage into `path`, checking its SHA-256. Damage (DATA_LOSS, a hash that
    /// differs) and a missing object are findings; anything else is thrown (the attempt is retried).
    private func read(_ backup: Rampart_Backup_V1_Backup, to path: String) async throws {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw RPCError(.internal, "cannot create \(path)") }
        defer { try? handle.close() }
        var hash = SHA256()
        var offset: UInt64 = 0
        while true {
            try Task.checkCancellation()
            var request = Rampart_Storage_V1_ReadObjectRequest()
            request.objectID = backup.objectID
            request.offset = offset
            request.length = 1 << 20
            let chunk: Rampart_Storage_V1_ReadObjectResponse
            do {
                chunk = try await call(StorageAPI.readObject, request)
            } catch let error as RPCError where error.code == .dataLoss || error.code == .notFound {
                throw Finding(
                    check: DrillVerdict.check(
                        "storage", passed: false, "\(backup.fileName) cannot be read from storage: \(error.message)"))
            }
            try handle.write(contentsOf: chunk.data)
            hash.update(data: chunk.data)
            offset += UInt64(chunk.data.count)
            if chunk.eof || chunk.data.isEmpty { break }
        }
        let digest = hash.finalize().hexString
        guard digest == backup.sha256, offset == backup.size else {
            throw Finding(
                check: DrillVerdict.check(
                    "storage", passed: false,
                    "\(backup.fileName) read from storage is \(offset) bytes with SHA-256 \(digest); the backup record says "
                        + "\(backup.size) bytes, \(backup.sha256)"))
        }
    }

    /// Copies the bundle's file `fileName` into `path` (RampartArchive's bundle reader, as a stream).
    static func extract(_ fileName: String, from bundle: String, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw RPCError(.internal, "cannot create \(path)") }
        defer { try? handle.close() }
        _ = try ClusterBundle.copy(fileName, from: .file(try ArchiveFile(path: bundle))) { try handle.write(contentsOf: $0) }
    }

    /// Runs `device-agent drill` and returns its report. The child gets no bus key and no bus address: it
    /// cannot connect to anything. Exit 0 (restorable) and 2 (not) carry a report; anything else is an
    /// error of the drill itself (thrown: the attempt is retried).
    private func runChild(
        device: Rampart_Inventory_V1_Device, serial: String, archivePath: String, fileName: String, sha256: String,
        scratch: String
    ) async throws -> Rampart_Backup_V1_DrillReport {
        let folder = scratch + "/" + UUID().uuidString.lowercased()
        let stdout = folder + ".out", stderr = folder + ".err"
        defer {
            try? FileManager.default.removeItem(atPath: folder)
            unlink(stdout)
            unlink(stderr)
        }
        let arguments = [
            "drill", "--dir", folder, "--archive", archivePath, "--file-name", fileName, "--sha256", sha256,
            "--facts", try device.jsonString(), "--serial", serial, "--output", "json",
        ]
        let status = try await ChildRun.run(
            deviceAgentPath, arguments, stdout: stdout, stderr: stderr, timeout: childTimeout)
        let output = (try? String(contentsOfFile: stdout, encoding: .utf8)) ?? ""
        guard status == 0 || status == 2 else {
            let errors = ((try? String(contentsOfFile: stderr, encoding: .utf8)) ?? "").suffix(2000)
            throw RPCError(.internal, "device-agent drill exited with status \(status): \(errors)")
        }
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        guard let line = output.split(separator: "\n").last,
            let report = try? Rampart_Backup_V1_DrillReport(jsonString: String(line), options: options)
        else {
            throw RPCError(.internal, "device-agent drill printed no report")
        }
        return report
    }

    /// A scratch folder (mode 0700) under `root`.
    static func makeScratch(in root: String) throws -> String {
        var template = Array((root + "/rampart-drill-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw RPCError(.internal, "cannot make a scratch folder in \(root): \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    private func call<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws -> Response {
        try await client.call(method, request, timeout: Self.callTimeout, idempotent: true)
    }
}

/// A child process run to its end: its output into files, its environment reduced to what it needs (no
/// bus keys), ended when the caller is cancelled or it outlives `timeout` (SIGTERM, then SIGKILL
/// `Child.grace` later if it is still there).
enum ChildRun {
    /// Runs `path` with `arguments`; returns its exit status (a signal's number + 128 when killed).
    static func run(_ path: String, _ arguments: [String], stdout: String, stderr: String, timeout: Duration) async throws
        -> Int32
    {
        let child = Child()
        let process = child.process
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let environment = ProcessInfo.processInfo.environment
        // Only what a drill uses: never RAMPART_KEYS, RAMPART_KEY or RAMPART_BUS.
        process.environment = environment.filter { key, _ in
            ["PATH", "TMPDIR", "LANG", "RAMPART_LOG_LEVEL", "RAMPART_LOG_FORMAT", "RAMPART_TEST_RUN"].contains(key)
        }
        for file in [stdout, stderr] {
            guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw RPCError(.internal, "cannot create \(file)")
            }
        }
        guard let out = FileHandle(forWritingAtPath: stdout), let err = FileHandle(forWritingAtPath: stderr) else {
            throw RPCError(.internal, "cannot open \(stdout)")
        }
        defer {
            try? out.close()
            try? err.close()
        }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        return try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask {
                let status: Int32 = try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
                        child.process.terminationHandler = { ended in
                            continuation.resume(
                                returning: ended.terminationReason == .uncaughtSignal
                                    ? 128 + ended.terminationStatus : ended.terminationStatus)
                        }
                        do {
                            guard try child.start() else {
                                // Cancelled before it started: it never runs.
                                child.process.terminationHandler = nil
                                continuation.resume(throwing: CancellationError())
                                return
                            }
                        } catch {
                            child.process.terminationHandler = nil
                            continuation.resume(
                                throwing: RPCError(.internal, "cannot start \(path): \(error) (backup-worker --device-agent)"))
                        }
                    }
                } onCancel: {
                    child.kill()
                }
                return status
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                child.kill()
                return nil
            }
            defer { group.cancelAll() }
            var timedOut = false
            while let next = try await group.next() {
                // nil: the timeout ran out and asked the child to end; its status follows.
                guard let status = next else {
                    timedOut = true
                    continue
                }
                guard !timedOut else { break }
                return status
            }
            throw RPCError(.deadlineExceeded, "device-agent drill took longer than \(timeout) and was stopped")
        }
    }

    /// The process, shared with the cancellation handler and the timeout (Foundation's `Process` is not
    /// `Sendable`; it is only signalled from there, which `Process` allows from any thread). A kill asked
    /// for before the process started (the task cancelled first) is remembered, so it never starts.
    final class Child: @unchecked Sendable {
        let process = Process()
        private let state = Mutex((started: false, killed: false))
        /// How long a child has between SIGTERM and SIGKILL.
        static let grace = Duration.seconds(5)

        /// Starts the process unless it was killed already; false then.
        func start() throws -> Bool {
            try state.withLock { state in
                guard !state.killed else { return false }
                try process.run()
                state.started = true
                return true
            }
        }

        /// Asks the process to end (SIGTERM), and ends it (SIGKILL) if it is still there after `grace`.
        func kill() {
            let started = state.withLock { state in
                defer { state.killed = true }
                return state.started
            }
            guard started, process.isRunning else { return }
            let pid = process.processIdentifier
            process.terminate()
            Task.detached { [self] in
                try? await Task.sleep(for: Self.grace)
                if process.isRunning { _ = Glibc.kill(pid, SIGKILL) }
            }
        }
    }
}
