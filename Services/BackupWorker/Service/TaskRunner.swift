import Crypto
import Foundation
import Logging
import RampartAPI
import RampartArchive
import RampartBasics
import RampartBus
import RampartConfigDiff
import RampartInventory
import RampartProto
import RampartRPC
import SwiftProtobuf
import Synchronization

/// Progress of the running task, written by the executor and flushed by the lease renewal loop.
final class TaskProgress: Sendable {
    private let state = Mutex<(percent: Int, message: String, dirty: Bool)>((0, "", false))

    func update(percent: Int? = nil, message: String? = nil) {
        state.withLock {
            if let percent { $0.percent = max(0, min(100, percent)) }
            if let message { $0.message = message }
            $0.dirty = true
        }
    }

    /// What changed since the last call, if anything.
    func take() -> (percent: Int, message: String)? {
        state.withLock {
            guard $0.dirty else { return nil }
            $0.dirty = false
            return ($0.percent, $0.message)
        }
    }
}

/// How a task ended, for the runner to record.
enum TaskResult: Sendable {
    case succeeded(message: String, backups: [NewBackup])
    case partiallySucceeded(message: String, backups: [NewBackup])
    /// Final, not retried (rule B10's cancellation of a cluster).
    case cancelled(message: String)
    /// A restore drill ran (P18): its results are recorded with the task's end, whatever they found.
    case drilled(state: Rampart_Backup_V1_TaskState, message: String, results: [Rampart_Backup_V1_DrillResult])
}

/// A device's export as received: the archive's facts, and the archive itself when it is kept for a
/// bundle (in a file without a name, `ArchiveSpool`: never in memory).
struct DeviceExport: Sendable {
    var device: Rampart_Inventory_V1_Device
    var fileName: String
    var size: UInt64
    var sha256: String
    var software: Rampart_Inventory_V1_SoftwareVersion
    var archive: ArchiveFile?
    /// The configuration's fingerprint (nil when the archive could not be read for one).
    var fingerprint: ConfigFingerprint?
    /// For a device's own file: the device's previous backup, and what the new one is next to it (P17).
    var previous: PreviousBackup?
    var comparison = ConfigComparison.notCompared
}

/// Runs one claimed task: asks devices for their configuration archives and stores them.
struct TaskRunner: Sendable {
    let client: BusClient
    let logger: Logger
    /// The task lease, seconds: told to devices, which release an export unread for that long.
    var leaseSeconds = 15
    /// How long an attempt waits for a busy device (RESOURCE_EXHAUSTED from StartExport) before failing;
    /// the attempt's lease is renewed meanwhile, so the wait costs no attempt.
    var busyWait = Duration.seconds(300)
    /// Where node archives and cluster bundles are spooled while a bundle is made (files without a
    /// name, mode 0600: they hold decrypted private keys, B12).
    var spoolDirectory = FileManager.default.temporaryDirectory.path
    /// The newest backup of an owner (device or cluster id), which a new backup of it is compared with (P17).
    var previousBackup: @Sendable (_ owner: String) async throws -> PreviousBackup? = { _ in nil }
    static let chunkSize: UInt32 = 1 << 20
    private static let callTimeout = Duration.seconds(30)

    func run(_ task: ClaimedTask, progress: TaskProgress) async throws -> TaskResult {
        switch task.kind {
        case .device: try await backUpDevice(task, progress: progress)
        case .haPair: try await backUpPair(task, progress: progress)
        case .cluster: try await backUpCluster(task, progress: progress)
        default: throw RPCError(.internal, "task \(task.id) has no runnable kind")
        }
    }

    // MARK: targets

    private func backUpDevice(_ task: ClaimedTask, progress: TaskProgress) async throws -> TaskResult {
        var request = Rampart_Inventory_V1_GetDeviceRequest()
        request.device = task.targetId
        let device: Rampart_Inventory_V1_DeviceResponse = try await inventory(InventoryAPI.getDevice, request)
        let export = try await exportDevice(device.device, role: .standalone, task: task, keep: false) {
            progress.update(percent: $0, message: $1)
        }
        return .succeeded(message: Self.stored([export]), backups: [record(export, task: task)])
    }

    private func backUpPair(_ task: ClaimedTask, progress: TaskProgress) async throws -> TaskResult {
        var request = Rampart_Inventory_V1_GetHaPairRequest()
        request.pair = task.targetId
        let pair: Rampart_Inventory_V1_HaPairResponse = try await inventory(InventoryAPI.getHaPair, request)
        let peers = [pair.pair.primaryID, pair.pair.secondaryID].compactMap { id in pair.devices.first { $0.id == id } }
        guard peers.count == 2 else { throw RPCError.failedPrecondition("HA pair \(pair.pair.name) does not have two registered peers") }
        // Rule B7: the pair as a unit, one file per peer with its role in the name; both or nothing.
        var exports: [DeviceExport] = []
        for (index, peer) in peers.enumerated() {
            let export = try await exportDevice(peer, role: peer.role, task: task, keep: false) { percent, message in
                progress.update(percent: (index * 100 + percent) / 2, message: message)
            }
            exports.append(export)
        }
        return .succeeded(message: Self.stored(exports), backups: exports.map { record($0, task: task, pairId: pair.pair.id) })
    }

    private func backUpCluster(_ task: ClaimedTask, progress: TaskProgress) async throws -> TaskResult {
        var request = Rampart_Inventory_V1_GetClusterRequest()
        request.cluster = task.targetId
        let cluster: Rampart_Inventory_V1_ClusterResponse = try await inventory(InventoryAPI.getCluster, request)
        let (control, data) = try Planner.clusterNodes(cluster).get()
        let ordered = [control] + data
        var exports: [String: DeviceExport] = [:]
        var failures: [String: String] = [:]
        for (index, node) in ordered.enumerated() {
            do {
                exports[node.id] = try await exportDevice(node, role: node.role, task: task, keep: true) { percent, message in
                    progress.update(percent: (index * 100 + percent) / (ordered.count + 1), message: message)
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failures[node.id] = "\(error)"
                logger.warning("cluster node export failed", metadata: ["node": "\(node.name)", "error": "\(error)"])
                if node.id == control.id { break }  // B10: nothing more to do
            }
        }
        let outcome = BackupOutcome.cluster(
            control: (control.name, exports[control.id] != nil),
            data: data.map { ($0.name, exports[$0.id] != nil) })
        let kept: [String]
        switch outcome {
        case .cancelled(let reason):
            return .cancelled(message: "\(reason): \(failures[control.id] ?? "")")
        case .succeeded(let keep), .partiallySucceeded(let keep, _):
            kept = keep
        }
        let members = ordered.filter { kept.contains($0.name) }.compactMap { exports[$0.id] }
        let bundleName = BackupNaming.clusterBundle(clusterName: cluster.cluster.name, date: task.jobCreated)
        // P17: the nodes' configurations next to the cluster's previous bundle; unchanged, no bundle is made.
        let fingerprints = members.compactMap { export in export.fingerprint.map { (export.device.name, $0) } }
        let fingerprint = fingerprints.count == members.count
            ? ConfigComparison.bundle(Dictionary(fingerprints, uniquingKeysWith: { first, _ in first })) : nil
        let previous = try await previousBackup(cluster.cluster.id)
        let comparison = ConfigComparison.compare(fingerprint, with: previous)
        var backup = Self.newRecord(
            task: task, ownerId: cluster.cluster.id, ownerName: cluster.cluster.name, fileName: bundleName,
            size: 0, sha256: "", software: control.software)
        backup.clusterID = cluster.cluster.id
        if case .unchanged = comparison {
            progress.update(message: "\(bundleName): configuration unchanged since the previous bundle, nothing stored")
        } else {
            // Node archives and the bundle pass through files a buffer at a time: a cluster's backup never
            // shows in the worker's memory, whatever its size.
            let spool = try ArchiveSpool(directory: spoolDirectory)
            try ClusterBundle.write(
                members: members.map { export in
                    let archive = export.archive
                    return ClusterBundle.StreamedMember(fileName: export.fileName, size: archive?.size ?? 0) { write in
                        guard let archive else { return }
                        try Self.read(archive) { try write($0) }
                    }
                }
            ) { try spool.write($0) }
            let (bundle, sha256) = try spool.finish()
            progress.update(message: "storing \(bundleName) (\(members.count) of \(ordered.count) nodes)")
            let object = try await store(
                bundle, sha256: sha256, fileName: bundleName, contentType: "application/gzip", owner: cluster.cluster.id,
                key: "\(task.id)/bundle/\(task.attempts)")
            backup.size = object.size
            backup.sha256 = object.objectID
            backup.objectID = object.objectID
            backup.members = members.map { export in
                var member = Rampart_Backup_V1_BundleMember()
                member.deviceID = export.device.id
                member.deviceName = export.device.name
                member.role = export.device.role
                member.fileName = export.fileName
                member.size = export.size
                member.sha256 = export.sha256
                return member
            }
        }
        backup = comparison.applied(to: backup, previous: previous)
        let stored = NewBackup(record: backup, fingerprint: fingerprint)
        let what = backup.unchangedFrom.isEmpty ? "stored \(bundleName)" : "\(cluster.cluster.name) unchanged since \(backup.fileName)"
        if case .partiallySucceeded(_, let failed) = outcome {
            let reasons = data.filter { failed.contains($0.name) }.map { "\($0.name): \(failures[$0.id] ?? "failed")" }
            return .partiallySucceeded(
                message: "\(what) without data node(s) \(reasons.joined(separator: "; ")) (rule B10)", backups: [stored])
        }
        return .succeeded(message: what, backups: [stored])
    }

    // MARK: one device

    /// Notes the device's version (B5), has it build its archive, reads it in chunks checking its
    /// SHA-256, and either streams it into storage or keeps it in a spool file (`keep`, for bundles).
    private func exportDevice(
        _ device: Rampart_Inventory_V1_Device, role: Rampart_Inventory_V1_Role, task: ClaimedTask, keep: Bool,
        progress: @Sendable (Int, String) -> Void
    ) async throws -> DeviceExport {
        let service = BusProtocol.deviceService(device.id)
        let described: Rampart_Device_V1_DescribeResponse = try await deviceCall(service, DeviceAPI.describe, Rampart_Device_V1_DescribeRequest(), idempotent: true)
        // B11: the archive must be the appliance inventory knows under this id.
        guard described.facts.id == device.id, described.facts.serial == device.serial else {
            throw RPCError.failedPrecondition(
                "the device answering as \(device.name) reports id \(described.facts.id) serial \(described.facts.serial), not \(device.id) serial \(device.serial)")
        }
        let software = described.facts.software
        progress(0, "noted \(device.name) version \(InventoryRules.describe(software))")  // B5: first step

        var start = Rampart_Device_V1_StartExportRequest()
        start.jobID = task.jobId
        start.role = role
        start.haPairID = device.haPairID
        start.clusterID = device.clusterID
        start.createdUnixMs = task.jobCreated.unixMillis
        // The export belongs to this attempt: a later attempt replaces it, and the device releases it when
        // this attempt stops reading for a lease's time (docs/faults.md).
        start.taskID = task.id
        start.attemptToken = UInt64(max(0, task.token))
        start.leaseSeconds = UInt32(max(1, leaseSeconds))
        let export = try await startExport(service, start, deviceName: device.name, progress: progress)
        do {
            return try await readExport(export, of: device, on: service, role: role, task: task, keep: keep, software: software, progress: progress)
        } catch {
            // Interrupted (a failure, a cancel, a lost lease): the device's slot is given back at once.
            await release(export.exportID, on: service)
            throw error
        }
    }

    /// StartExport, waiting with backoff while the device is busy (RESOURCE_EXHAUSTED: all its export slots
    /// are taken) for up to `busyWait`; the wait ends early when the attempt is cancelled.
    private func startExport(
        _ service: String, _ request: Rampart_Device_V1_StartExportRequest, deviceName: String,
        progress: @Sendable (Int, String) -> Void
    ) async throws -> Rampart_Device_V1_StartExportResponse {
        let clock = ContinuousClock()
        let deadline = clock.now + busyWait
        var delay = Duration.milliseconds(250)
        while true {
            do {
                return try await deviceCall(service, DeviceAPI.startExport, request)
            } catch let error as RPCError where error.code == .resourceExhausted && clock.now + delay < deadline {
                progress(0, "waiting: \(deviceName) is busy")
                logger.notice(
                    "device busy: waiting to export", metadata: ["device": "\(deviceName)", "retry-in": "\(delay)", "reason": "\(error.message)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Best effort: FinishExport of an interrupted attempt's export, so the device's slot is free for the
    /// next one; runs even when the attempt was cancelled. When it cannot be sent, the device releases the
    /// export by itself once it has been unread for the lease's time.
    private func release(_ exportId: String, on service: String) async {
        var finish = Rampart_Device_V1_FinishExportRequest()
        finish.exportID = exportId
        let client = client
        let released: Bool = await Task.detached {
            do {
                let _: Rampart_Device_V1_FinishExportResponse = try await client.call(
                    DeviceAPI.finishExport, finish, service: service, timeout: .seconds(5))
                return true
            } catch let error as RPCError where error.code == .notFound {
                return true  // finished already, or released by the device
            } catch {
                return false
            }
        }.value
        if !released {
            logger.notice("an interrupted attempt's export stays on the device until it is released there", metadata: ["export": "\(exportId)"])
        }
    }

    /// Reads an export in chunks checking its SHA-256, and streams it into storage or into a spool file.
    private func readExport(
        _ export: Rampart_Device_V1_StartExportResponse, of device: Rampart_Inventory_V1_Device, on service: String,
        role: Rampart_Inventory_V1_Role, task: ClaimedTask, keep: Bool, software: Rampart_Inventory_V1_SoftwareVersion,
        progress: @Sendable (Int, String) -> Void
    ) async throws -> DeviceExport {
        let manifest = try ManifestFacts(json: export.manifestJson)
        guard manifest.deviceId == device.id else {
            throw RPCError.failedPrecondition("\(device.name)'s archive names device \(manifest.deviceId), not \(device.id) (rule B11)")
        }
        let fileName = BackupNaming.deviceFile(
            deviceName: device.name, role: BackupRole(rawValue: role.label) ?? .standalone, date: task.jobCreated)

        var upload: Rampart_Storage_V1_BeginUploadResponse?
        if !keep {
            var begin = Rampart_Storage_V1_BeginUploadRequest()
            begin.fileName = fileName
            begin.contentType = "application/x-tar"
            begin.owner = device.id
            begin.size = export.size
            begin.idempotencyKey = "\(task.id)/\(device.id)/\(task.attempts)"
            upload = try await storageCall(StorageAPI.beginUpload, begin, idempotent: true)
        }
        var hash = SHA256()
        // Every archive is also kept, in a file without a name (it holds decrypted keys, B12), to be read
        // for its configuration's fingerprint (P17) — and for a bundle, to be bundled.
        let kept = try ArchiveSpool(directory: spoolDirectory)
        var offset: UInt64 = 0
        let digest: String
        var previous: PreviousBackup?
        var comparison = ConfigComparison.notCompared
        var fingerprint: ConfigFingerprint?
        var archive: ArchiveFile?
        // A failed attempt removes its partial upload: nothing half-written stays in storage (on a full disk it
        // would keep the disk full for every later attempt). The retry begins a new upload under a new key.
        do {
            while true {
                try Task.checkCancellation()
                var read = Rampart_Device_V1_ReadExportRequest()
                read.exportID = export.exportID
                read.offset = offset
                read.length = Self.chunkSize
                let chunk: Rampart_Device_V1_ReadExportResponse = try await deviceCall(service, DeviceAPI.readExport, read, idempotent: true)
                hash.update(data: chunk.data)
                if let upload, !chunk.data.isEmpty, offset + UInt64(chunk.data.count) > upload.received {
                    var put = Rampart_Storage_V1_UploadChunkRequest()
                    put.uploadID = upload.uploadID
                    put.offset = offset
                    put.data = chunk.data
                    let _: Rampart_Storage_V1_UploadChunkResponse = try await storageCall(StorageAPI.uploadChunk, put, idempotent: true)
                }
                try kept.write(chunk.data)
                offset += UInt64(chunk.data.count)
                let percent = export.size == 0 ? 100 : Int(offset * 100 / export.size)
                progress(percent, "exporting \(device.name): \(percent)%")
                if chunk.eof || chunk.data.isEmpty { break }
            }
            digest = hash.finalize().hexString
            guard offset == export.size, digest == export.sha256 else {
                throw RPCError(.dataLoss, "\(device.name)'s archive arrived with \(offset) bytes and SHA-256 \(digest), announced \(export.size) bytes and \(export.sha256)")
            }
            var finish = Rampart_Device_V1_FinishExportRequest()
            finish.exportID = export.exportID
            let _: Rampart_Device_V1_FinishExportResponse? = try? await deviceCall(service, DeviceAPI.finishExport, finish)
            archive = try kept.finish().file
            if let archive {
                // Off the cooperative threads: reading a large configuration for its fingerprint must not
                // hold up the worker's request handlers (GetJob, ListBackups) on a small machine.
                let runner = self
                fingerprint = await BlockingPool.shared.run { runner.fingerprintOf(archive, device: device) }
            }
            if let upload {
                // P17: the same configuration as the device's previous backup is not stored twice: the new
                // record shares that backup's file, and the upload is dropped instead of committed.
                previous = try await previousBackup(device.id)
                comparison = ConfigComparison.compare(fingerprint, with: previous)
                if case .unchanged = comparison {
                    await abandon(upload.uploadID)
                    progress(100, "\(device.name): configuration unchanged since \(previous?.record.fileName ?? ""), nothing stored")
                } else {
                    var commit = Rampart_Storage_V1_CommitUploadRequest()
                    commit.uploadID = upload.uploadID
                    commit.sha256 = digest
                    let _: Rampart_Storage_V1_ObjectInfo = try await storageCall(StorageAPI.commitUpload, commit, idempotent: true)
                }
            }
        } catch {
            if let upload { await abandon(upload.uploadID) }
            throw error
        }
        var result = DeviceExport(device: device, fileName: fileName, size: offset, sha256: digest, software: software)
        result.device.role = role
        result.archive = keep ? archive : nil
        result.fingerprint = fingerprint
        result.previous = previous
        result.comparison = comparison
        return result
    }

    /// The fingerprint of the configuration in `archive` (P17); nil, with a warning, when the archive
    /// cannot be read for one: the backup is stored all the same, compared with nothing.
    private func fingerprintOf(_ archive: ArchiveFile, device: Rampart_Inventory_V1_Device) -> ConfigFingerprint? {
        do {
            return try ConfigTree.fingerprint(ofArchive: archive.source())
        } catch {
            logger.warning(
                "the archive could not be read for its configuration's fingerprint; it is stored without one",
                metadata: ["device": "\(device.name)", "error": "\(error)"])
            return nil
        }
    }

    /// Uploads `file` (whose SHA-256 is `sha256`) in chunks read from it.
    private func store(
        _ file: ArchiveFile, sha256: String, fileName: String, contentType: String, owner: String, key: String
    ) async throws -> Rampart_Storage_V1_ObjectInfo {
        var begin = Rampart_Storage_V1_BeginUploadRequest()
        begin.fileName = fileName
        begin.contentType = contentType
        begin.owner = owner
        begin.size = UInt64(file.size)
        begin.idempotencyKey = key
        let upload: Rampart_Storage_V1_BeginUploadResponse = try await storageCall(StorageAPI.beginUpload, begin, idempotent: true)
        do {
            var offset = Int(upload.received)
            while offset < file.size {
                let end = min(file.size, offset + Int(Self.chunkSize))
                var put = Rampart_Storage_V1_UploadChunkRequest()
                put.uploadID = upload.uploadID
                put.offset = UInt64(offset)
                put.data = try file.read(at: offset, upTo: end - offset)
                guard put.data.count == end - offset else {
                    throw RPCError(.dataLoss, "the spooled \(fileName) is shorter than it was written")
                }
                let _: Rampart_Storage_V1_UploadChunkResponse = try await storageCall(StorageAPI.uploadChunk, put, idempotent: true)
                offset = end
            }
            var commit = Rampart_Storage_V1_CommitUploadRequest()
            commit.uploadID = upload.uploadID
            commit.sha256 = sha256
            return try await storageCall(StorageAPI.commitUpload, commit, idempotent: true)
        } catch {
            await abandon(upload.uploadID)
            throw error
        }
    }

    /// Hands `file`'s contents to `body`, a chunk at a time.
    static func read(_ file: ArchiveFile, _ body: (Data) throws -> Void) throws {
        var offset = 0
        while offset < file.size {
            let piece = try file.read(at: offset, upTo: Int(chunkSize))
            guard !piece.isEmpty else { throw RPCError(.dataLoss, "\(file.path) is shorter than it was written") }
            try body(piece)
            offset += piece.count
        }
    }

    /// Best effort: aborts the upload of a failed attempt so that its partial file leaves storage. Harmless when
    /// the upload was committed after all (FAILED_PRECONDITION) or is gone (NOT_FOUND); runs even when the
    /// attempt was cancelled (lease lost), so it is not tied to the task's cancellation.
    private func abandon(_ uploadId: String) async {
        var abort = Rampart_Storage_V1_AbortUploadRequest()
        abort.uploadID = uploadId
        let client = client
        let aborted: Rampart_Storage_V1_AbortUploadResponse? = await Task.detached {
            try? await client.call(
                StorageAPI.abortUpload, abort, timeout: .seconds(10))
        }.value
        if aborted == nil { logger.notice("the failed attempt's partial upload stays in storage", metadata: ["upload": "\(uploadId)"]) }
    }

    private func record(_ export: DeviceExport, task: ClaimedTask, pairId: String = "") -> NewBackup {
        var backup = Self.newRecord(
            task: task, ownerId: export.device.id, ownerName: export.device.name, fileName: export.fileName,
            size: export.size, sha256: export.sha256, software: export.software)
        backup.role = export.device.role
        backup.haPairID = pairId
        return NewBackup(record: export.comparison.applied(to: backup, previous: export.previous), fingerprint: export.fingerprint)
    }

    /// A task's message: the files stored, and the devices whose configuration had not changed.
    static func stored(_ exports: [DeviceExport]) -> String {
        let stored = exports.filter { if case .unchanged = $0.comparison { false } else { true } }
        let unchanged = exports.filter { if case .unchanged = $0.comparison { true } else { false } }
        return ((stored.isEmpty ? [] : ["stored " + stored.map(\.fileName).joined(separator: ", ")])
            + (unchanged.isEmpty
                ? [] : [unchanged.map(\.device.name).joined(separator: ", ") + " unchanged since the previous backup"]))
            .joined(separator: "; ")
    }

    /// A backup record of `task` for a stored file (objects are content-addressed: object id = SHA-256).
    private static func newRecord(
        task: ClaimedTask, ownerId: String, ownerName: String, fileName: String, size: UInt64, sha256: String,
        software: Rampart_Inventory_V1_SoftwareVersion
    ) -> Rampart_Backup_V1_Backup {
        var backup = Rampart_Backup_V1_Backup()
        backup.id = UUID().uuidString.lowercased()
        backup.jobID = task.jobId
        backup.taskID = task.id
        backup.ownerID = ownerId
        backup.ownerName = ownerName
        backup.fileName = fileName
        backup.size = size
        backup.sha256 = sha256
        backup.objectID = sha256
        backup.software = software
        backup.createdUnixMs = task.jobCreated.unixMillis
        return backup
    }

    // MARK: calls

    private func inventory<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request)
        async throws -> Response
    {
        try await client.call(method, request, timeout: Self.callTimeout, idempotent: true)
    }

    private func deviceCall<Request, Response>(
        _ service: String, _ method: RPCMethod<Request, Response>, _ request: Request, idempotent: Bool = false
    ) async throws -> Response {
        try await client.call(method, request, service: service, timeout: Self.callTimeout, idempotent: idempotent)
    }

    private func storageCall<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, idempotent: Bool = false
    ) async throws -> Response {
        try await client.call(method, request, timeout: Self.callTimeout, idempotent: idempotent)
    }
}

/// The facts the worker checks in a device's manifest.json (docs/rules.md#archives).
struct ManifestFacts: Sendable {
    var deviceId: String

    init(json: Data) throws {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
            let deviceId = object["device_id"] as? String
        else {
            throw RPCError(.dataLoss, "the device's manifest.json is not valid or names no device_id")
        }
        self.deviceId = deviceId
    }
}
