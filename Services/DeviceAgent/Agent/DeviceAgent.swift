import Foundation
import Logging
import RampartAPI
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC
import Synchronization

/// A simulated threat defense device on the bus: serves `device/<device-id>` (Describe and the export
/// methods a backup uses). Every handler validates its request and answers with an `RPCError` code.
public final class DeviceAgent: Sendable {
    /// The bus service of device `deviceId`: "device/<device-id>".
    public static func serviceName(deviceId: String) -> String { BusProtocol.deviceService(deviceId) }

    /// Largest chunk ReadExport returns (1 MiB, docs/rules.md#bus).
    public static let maxChunk = 1 << 20

    /// Failure switches and limits.
    public struct Options: Sendable {
        /// StartExport fails with INTERNAL "simulated export failure".
        public var failExport = false
        /// Sleep this long before answering each ReadExport.
        public var slowExportMs = 0
        /// Exports held at once.
        public var maxExports = 4
        /// An export not finished within this time is dropped, ms.
        public var exportTimeToLiveMs: Int64 = 600_000

        /// Default options: no failures, 4 exports, 10 minutes.
        public init(failExport: Bool = false, slowExportMs: Int = 0) {
            self.failExport = failExport
            self.slowExportMs = slowExportMs
        }
    }

    /// The device's folder.
    public let folder: DeviceFolder
    /// Its inventory id.
    public let deviceId: String
    /// The manager it is registered with.
    public let managerId: String
    /// Exports held (each an unnamed file in the device folder).
    public let exports: ExportStore
    private let options: Options
    private let bootUnixMs: Int64
    private let now: @Sendable () -> Int64

    /// The agent of the device in `folder`, registered as `deviceId` with `managerId`.
    public init(
        folder: DeviceFolder, deviceId: String, managerId: String, options: Options = Options(),
        now: @escaping @Sendable () -> Int64 = { unixMillis() }
    ) {
        self.folder = folder
        self.deviceId = deviceId
        self.managerId = managerId
        self.options = options
        self.now = now
        bootUnixMs = now()
        exports = ExportStore(limit: options.maxExports, timeToLiveMs: options.exportTimeToLiveMs, now: now)
    }

    /// The handlers, ready for a `ServiceHost`.
    public func router() -> ServiceRouter {
        var router = ServiceRouter(serviceName: BusProtocol.deviceService(deviceId), policy: DeviceAPI.policy)
        router.register(DeviceAPI.describe) { [self] (_: Rampart_Device_V1_DescribeRequest, _) in describe() }
        // Builds the whole archive before it first awaits: not on the socket thread.
        router.register(DeviceAPI.startExport, offSocketThread: true) { [self] (request: Rampart_Device_V1_StartExportRequest, context) in
            try await startExport(request, logger: context.logger)
        }
        router.register(DeviceAPI.readExport) { [self] (request: Rampart_Device_V1_ReadExportRequest, _) in
            try await readExport(request)
        }
        router.register(DeviceAPI.finishExport) { [self] (request: Rampart_Device_V1_FinishExportRequest, _) in
            try finishExport(request)
        }
        return router
    }

    /// The device's facts and state.
    public func describe() -> Rampart_Device_V1_DescribeResponse {
        var response = Rampart_Device_V1_DescribeResponse()
        var facts = folder.facts.inventoryDevice
        facts.id = deviceId
        facts.managerID = managerId
        facts.connected = true
        response.facts = facts
        response.state = "running"
        response.configBytes = folder.configBytes()
        response.bootUnixMs = bootUnixMs
        return response
    }

    /// Builds the configuration-only archive (B1) with its manifest (B5, B11) and decrypted keys (B12),
    /// and keeps it for ReadExport.
    public func startExport(
        _ request: Rampart_Device_V1_StartExportRequest, logger: Logger = Logger(label: "rampart.device-agent")
    ) async throws -> Rampart_Device_V1_StartExportResponse {
        let role = try Self.validate(request)
        if options.failExport { throw RPCError(.internal, "simulated export failure") }
        let owner = request.taskID.isEmpty
            ? nil
            : ExportStore.Owner(taskId: request.taskID, token: request.attemptToken, leaseMs: Int64(request.leaseSeconds) * 1000)
        let id = try exports.reserve(owner: owner)
        do {
            let createdMs = request.createdUnixMs == 0 ? now() : request.createdUnixMs
            let facts = folder.facts
            let manifest = BackupManifest(
                deviceId: deviceId, deviceName: facts.name, serial: facts.serial, managerId: managerId, model: facts.model,
                platform: facts.platform, hypervisor: facts.hypervisor, networkModules: facts.networkModules,
                interfaces: facts.interfaces.map { .init(type: $0.type, count: $0.count) },
                software: .init(version: facts.software, patch: facts.patch), role: role,
                haPairId: request.haPairID, clusterId: request.clusterID, managementIp: facts.managementIp,
                createdAt: BackupManifest.timestamp(Date(timeIntervalSince1970: Double(createdMs) / 1000)),
                jobId: request.jobID)
            let files: [BackupArchive.StreamedFile]
            do {
                files = try folder.exportStreams(at: Date(unixMillis: createdMs))
            } catch {
                throw RPCError(.internal, "the configuration tree cannot be read", cause: error)
            }
            // Written a buffer at a time to a file without a name in the device folder, and read back from
            // it by ReadExport: an export's size never shows in memory (docs/device-agent.md, "The exports").
            let spool = try ArchiveSpool(directory: folder.path)
            let written: BackupManifest
            do {
                written = try BackupArchive.write(manifest: manifest, files: files) { try spool.write($0) }
            } catch let error as ArchiveError where error.code == .hashMismatch || error.code == .truncated {
                throw RPCError(.aborted, "the configuration changed while it was exported; try again", cause: error)
            }
            let (archive, sha256) = try spool.finish()
            exports.fill(id, file: archive)
            var response = Rampart_Device_V1_StartExportResponse()
            response.exportID = id
            response.size = UInt64(archive.size)
            response.sha256 = sha256
            response.manifestJson = try written.encoded()
            logger.info(
                "export ready",
                metadata: ["export-id": "\(id)", "bytes": "\(archive.size)", "job-id": "\(request.jobID)", "role": "\(role.rawValue)"])
            return response
        } catch {
            exports.remove(id)
            if error is RPCError { throw error }
            throw RPCError(.internal, "the export could not be built", cause: error)
        }
    }

    /// A chunk (≤ 1 MiB) of an export at an offset.
    public func readExport(_ request: Rampart_Device_V1_ReadExportRequest) async throws -> Rampart_Device_V1_ReadExportResponse {
        guard !request.exportID.isEmpty else { throw RPCError.invalidArgument("export_id is missing") }
        let length = request.length == 0 ? Self.maxChunk : Int(request.length)
        guard length <= Self.maxChunk else {
            throw RPCError.invalidArgument("length \(request.length) is over the 1 MiB (1048576) chunk limit")
        }
        let file = try exports.file(request.exportID)
        guard request.offset <= UInt64(file.size) else {
            throw RPCError(.outOfRange, "offset \(request.offset) is past the end of the export (\(file.size) bytes)")
        }
        if options.slowExportMs > 0 { try await Task.sleep(for: .milliseconds(options.slowExportMs)) }
        let start = Int(request.offset)
        let end = min(file.size, start + length)
        var response = Rampart_Device_V1_ReadExportResponse()
        do {
            response.data = try file.read(at: start, upTo: end - start)
        } catch {
            throw RPCError(.internal, "the export cannot be read", cause: error)
        }
        guard response.data.count == end - start else {
            throw RPCError(.internal, "the export's file is shorter than it was written")
        }
        response.eof = end == file.size
        return response
    }

    /// Releases an export (NOT_FOUND when unknown).
    public func finishExport(_ request: Rampart_Device_V1_FinishExportRequest) throws -> Rampart_Device_V1_FinishExportResponse {
        guard !request.exportID.isEmpty else { throw RPCError.invalidArgument("export_id is missing") }
        guard exports.remove(request.exportID) else {
            throw RPCError.notFound("no export '\(request.exportID)' on this device (already finished or expired)")
        }
        return Rampart_Device_V1_FinishExportResponse()
    }

    /// Checks a StartExport request and returns the role it names.
    static func validate(_ request: Rampart_Device_V1_StartExportRequest) throws -> BackupRole {
        guard request.jobID.utf8.count <= 128, !request.jobID.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw RPCError.invalidArgument("job_id must be at most 128 printable characters")
        }
        for (name, value) in [("ha_pair_id", request.haPairID), ("cluster_id", request.clusterID), ("task_id", request.taskID)] {
            guard value.utf8.count <= 128, !value.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                throw RPCError.invalidArgument("\(name) must be at most 128 printable characters")
            }
        }
        guard request.createdUnixMs >= 0, request.createdUnixMs < 253_402_300_800_000 else {
            throw RPCError.invalidArgument("created_unix_ms \(request.createdUnixMs) is not a time between 1970 and 9999")
        }
        let role: BackupRole
        switch request.role {
        case .standalone: role = .standalone
        case .haPrimary: role = .haPrimary
        case .haSecondary: role = .haSecondary
        case .clusterControl: role = .clusterControl
        case .clusterData: role = .clusterData
        case .unspecified, .UNRECOGNIZED:
            throw RPCError.invalidArgument(
                "role is missing: standalone, ha-primary, ha-secondary, cluster-control or cluster-data")
        }
        switch role {
        case .haPrimary, .haSecondary:
            guard !request.haPairID.isEmpty, request.clusterID.isEmpty else {
                throw RPCError.invalidArgument("an HA peer's export needs ha_pair_id (and no cluster_id)")
            }
        case .clusterControl, .clusterData:
            guard !request.clusterID.isEmpty, request.haPairID.isEmpty else {
                throw RPCError.invalidArgument("a cluster node's export needs cluster_id (and no ha_pair_id)")
            }
        case .standalone:
            guard request.haPairID.isEmpty, request.clusterID.isEmpty else {
                throw RPCError.invalidArgument("a standalone device's export has no ha_pair_id or cluster_id")
            }
        }
        return role
    }
}
