import Crypto
import DeviceAgentCore
import Foundation
import Logging
import RampartAPI
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The original appliance's id in inventory, in the backups these tests make.
let originalDeviceId = "0b6e2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d"

/// A backup of a freshly made original device (`sampleFacts()`, management IP 10.0.0.11, registered
/// with rampart-manager as `originalDeviceId`), made by the device's own export (B1, B11, B12).
func makeBackup(
    facts: DeviceProfile = sampleFacts(configSize: 32 * 1024), deviceId: String = originalDeviceId,
    managerId: String = "rampart-manager", role: Rampart_Inventory_V1_Role = .standalone
) async throws -> (archive: Data, original: String) {
    let path = temporaryPath("original")
    let folder = try DeviceFolder.initialize(at: path, facts: facts)
    try folder.writeRegistration(managerId: managerId, deviceId: deviceId)
    let agent = DeviceAgent(folder: folder, deviceId: deviceId, managerId: managerId)
    let started = try await agent.startExport(exportRequest(role: role))
    let (archive, _) = try await readAll(agent, started.exportID)
    return (archive, path)
}

/// The usual stage of a restore test: a backup of the original device (`makeBackup()`), a replacement
/// (`makeReplacement()`) and the backup in the replacement's local backup folder; `remove()` deletes both
/// folders.
struct PlacedBackup {
    let archive: Data
    let original: String
    let replacement: DeviceFolder

    static func make(as fileName: String) async throws -> PlacedBackup {
        let (archive, original) = try await makeBackup()
        let replacement = try makeReplacement()
        try placeBackup(archive, in: replacement, as: fileName)
        return PlacedBackup(archive: archive, original: original, replacement: replacement)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: original)
        try? FileManager.default.removeItem(atPath: replacement.path)
    }
}

/// The replacement appliance (RMA): the same hardware and software as `sampleFacts()`, another serial,
/// name and management IP; with `extraCertificate` it also holds a VPN certificate added after the backup.
func makeReplacement(
    adjust: (inout DeviceProfile) -> Void = { _ in }, extraCertificate: Bool = true
) throws -> DeviceFolder {
    var facts = sampleFacts(name: "fw-rma-07", serial: "JAD9999Z007", configSize: 16 * 1024, seed: 7)
    facts.managementIp = "192.168.77.7"
    adjust(&facts)
    let folder = try DeviceFolder.initialize(at: temporaryPath("replacement"), facts: facts)
    if extraCertificate {
        try Data("-----BEGIN CERTIFICATE-----\nYWRkZWQgbGF0ZXI=\n-----END CERTIFICATE-----\n".utf8).write(
            to: URL(fileURLWithPath: folder.configPath + "/vpn/certs/added-after-backup.crt"))
    }
    return folder
}

/// Every entry below `root` (files with contents, folders and links as markers), for byte-for-byte
/// comparisons of a whole device folder.
func snapshot(_ root: String) -> [String: Data] {
    var entries: [String: Data] = [:]
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let relative = enumerator?.nextObject() as? String {
        var info = stat()
        guard lstat(root + "/" + relative, &info) == 0 else { continue }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            entries[relative] = FileManager.default.contents(atPath: root + "/" + relative) ?? Data("<unreadable>".utf8)
        case S_IFDIR: entries[relative + "/"] = Data("<dir \(info.st_mode & 0o7777)>".utf8)
        default: entries[relative] = Data("<other \(info.st_mode)>".utf8)
        }
    }
    return entries
}

/// The manifest and files of a valid backup, to craft archives from.
func parts(of archive: Data) throws -> (manifest: Data, members: [TarMember]) {
    let members = try TarReader(data: archive).members()
    return (members[0].contents, Array(members.dropFirst()))
}

/// A console that keeps what is written.
final class CapturingConsole: DeviceConsole {
    private let lines = Mutex<[String]>([])

    func line(_ text: String) { lines.withLock { $0.append(text) } }
    func prompt(_ text: String) { lines.withLock { $0.append(text) } }

    /// Everything written, one line per entry.
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}

/// An in-process restore coordinator that grants (or refuses) and records every call.
final class FakeCoordinator: RestoreCoordinating {
    /// One call, as received.
    struct Call: Sendable {
        var method: String
        var step = ""
        var detail = ""
        var token: UInt64 = 0
        var removed: [String] = []
        var at = unixMillis()
    }

    private struct State {
        var calls: [Call] = []
        var requests: [Rampart_Restore_V1_RequestLeaseRequest] = []
        var lease = Rampart_Restore_V1_Lease()
        var refusal: RPCError?
        var newerBackup: Rampart_Restore_V1_NewerBackup?
        var staleAtStep: String?
        var stepFailures: [RPCError] = []
    }

    private let state = Mutex(State())
    private let ttlMs: Int64
    private let now: @Sendable () -> Int64

    /// Grants leases living `ttlMs` on the clock `now`; refuses with `refusal` when set; answers "stale
    /// fencing token" to the first report of `staleAtStep`.
    init(
        ttlMs: Int64 = 3000, refusal: RPCError? = nil, staleAtStep: String? = nil,
        now: @escaping @Sendable () -> Int64 = { unixMillis() }
    ) {
        self.ttlMs = ttlMs
        self.now = now
        state.withLock {
            $0.refusal = refusal
            $0.staleAtStep = staleAtStep
        }
    }

    /// Says that `backup` is newer than the one asked for (RequestLease and CheckRestore).
    func announceNewer(_ backup: Rampart_Restore_V1_NewerBackup?) { state.withLock { $0.newerBackup = backup } }

    /// The next ReportStep calls fail with these, in order.
    func failNextSteps(_ errors: [RPCError]) { state.withLock { $0.stepFailures = errors } }

    var calls: [Call] { state.withLock { $0.calls } }
    var requests: [Rampart_Restore_V1_RequestLeaseRequest] { state.withLock { $0.requests } }
    /// The steps reported, renewals included, in order.
    var steps: [String] { calls.filter { $0.method == "ReportStep" }.map(\.step) }
    var methods: [String] { calls.map(\.method) }

    func requestLease(_ request: Rampart_Restore_V1_RequestLeaseRequest) async throws
        -> Rampart_Restore_V1_LeaseResponse
    {
        try state.withLock { state in
            state.calls.append(Call(method: "RequestLease"))
            state.requests.append(request)
            if let refusal = state.refusal { throw refusal }
            var lease = Rampart_Restore_V1_Lease()
            lease.id = "lease-1"
            lease.deviceID = originalDeviceId
            lease.deviceName = "fw-edge-01"
            lease.fencingToken = 41
            lease.state = .active
            lease.step = RestoreAPI.Step.granted
            lease.cliUser = request.cliUser
            lease.expiresUnixMs = now() + ttlMs
            state.lease = lease
            var response = Rampart_Restore_V1_LeaseResponse()
            response.lease = lease
            if let newer = state.newerBackup { response.newerBackup = newer }
            return response
        }
    }

    /// Like the real coordinator: every check passed, or its refusal (FAILED_PRECONDITION) as a failed
    /// check; other refusals are thrown.
    func checkRestore(_ request: Rampart_Restore_V1_RequestLeaseRequest) async throws
        -> Rampart_Restore_V1_CheckRestoreResponse
    {
        try state.withLock { state in
            state.calls.append(Call(method: "CheckRestore"))
            state.requests.append(request)
            var response = Rampart_Restore_V1_CheckRestoreResponse()
            var check = Rampart_Restore_V1_RestoreCheck()
            check.name = "order"
            check.rules = "R1"
            if let refusal = state.refusal {
                guard refusal.code == .failedPrecondition else { throw refusal }
                check.reasons = [refusal.message]
            } else {
                check.passed = true
                check.detail = "no other restore of fw-edge-01 is under way"
            }
            response.checks = [check]
            response.passed = check.passed
            response.deviceID = originalDeviceId
            response.deviceName = "fw-edge-01"
            if let newer = state.newerBackup { response.newerBackup = newer }
            return response
        }
    }

    func reportStep(_ request: Rampart_Restore_V1_ReportStepRequest) async throws -> Rampart_Restore_V1_Lease {
        try state.withLock { state in
            state.calls.append(
                Call(
                    method: "ReportStep", step: request.step, detail: request.detail, token: request.fencingToken,
                    removed: request.removedVpnCertificates))
            if !state.stepFailures.isEmpty { throw state.stepFailures.removeFirst() }
            if request.step == state.staleAtStep {
                state.staleAtStep = nil
                throw RPCError(
                    .failedPrecondition, "stale fencing token \(request.fencingToken): lease lease-1 now has 42")
            }
            guard request.leaseID == state.lease.id, request.fencingToken == state.lease.fencingToken,
                state.lease.state == .active
            else { throw RPCError(.failedPrecondition, "stale fencing token") }
            state.lease.step = request.step
            state.lease.expiresUnixMs = now() + ttlMs
            return state.lease
        }
    }

    func reportRejoined(_ request: Rampart_Restore_V1_ReportRejoinedRequest) async throws -> Rampart_Restore_V1_Lease {
        try state.withLock { state in
            state.calls.append(Call(method: "ReportRejoined", token: request.fencingToken))
            guard request.fencingToken == state.lease.fencingToken, state.lease.state == .active else {
                throw RPCError(.failedPrecondition, "stale fencing token")
            }
            state.lease.state = .rejoined
            state.lease.step = RestoreAPI.Step.rejoined
            return state.lease
        }
    }

    func reportFailed(_ request: Rampart_Restore_V1_ReportFailedRequest) async throws -> Rampart_Restore_V1_Lease {
        state.withLock { state in
            state.calls.append(Call(method: "ReportFailed", detail: request.reason, token: request.fencingToken))
            state.lease.state = .failed
            state.lease.endReason = request.reason
            return state.lease
        }
    }
}

/// A quiet logger for in-process runs.
let quietLogger: Logger = {
    var logger = Logger(label: "rampart.device-agent.test")
    logger.logLevel = .critical
    return logger
}()

/// A restore session of the device in `folder` against `coordinator`, writing to `console`.
func session(
    _ folder: DeviceFolder, coordinator: FakeCoordinator, console: CapturingConsole, rebootDelayMs: Int64 = 50,
    hooks: ConfigSwap.Hooks = .init()
) -> RestoreSession {
    var configuration = RestoreSession.Configuration()
    configuration.user = "alice"
    configuration.rebootDelayMs = rebootDelayMs
    configuration.hooks = hooks
    return RestoreSession(
        directory: folder.path, configuration: configuration, coordinator: coordinator, console: console,
        logger: quietLogger)
}

/// When a (fake) boot ran, ms since the epoch; 0 until it does.
final class BootRecorder: Sendable {
    private let time = Mutex<Int64>(0)

    var at: Int64 { time.withLock { $0 } }

    func mark() { time.withLock { $0 = unixMillis() } }
}

/// A boot that "finds" the restored device and records when it ran.
func fakeBoot(_ booted: BootRecorder) -> RestoreSession.Boot {
    { folder in
        booted.mark()
        var device = Rampart_Inventory_V1_Device()
        device.id = try folder.registration().deviceId
        device.name = folder.facts.name
        device.connected = true
        return device
    }
}

/// Writes `archive` into the device's local backup folder as `name`.
func placeBackup(_ archive: Data, in folder: DeviceFolder, as name: String = "fw-edge-01_20250131T120000Z.tar") throws {
    try archive.write(to: URL(fileURLWithPath: folder.backupsPath + "/" + name))
}


/// Writes `archive` (a device's backup) to `path` with one more file, `zeroBytes` zero bytes at
/// `addedPath`, listed in the manifest with its size and SHA-256: a valid backup of any size, written a
/// mebibyte at a time. Returns the archive's size.
@discardableResult
func writeBackup(_ archive: Data, adding addedPath: String, zeroBytes: Int, to path: String) throws -> Int {
    let contents = try BackupArchive.read(archive)
    let zeros = Data(count: 1 << 20)
    func produceZeros(_ write: (Data) throws -> Void) throws {
        var left = zeroBytes
        while left > 0 {
            let count = min(left, zeros.count)
            try write(count == zeros.count ? zeros : zeros.prefix(count))
            left -= count
        }
    }
    var hash = SHA256()
    try produceZeros { hash.update(data: $0) }
    let digest = hash.finalize().map { String(format: "%02x", $0) }.joined()
    let files =
        contents.files.map(BackupArchive.StreamedFile.init)
        + [BackupArchive.StreamedFile(path: addedPath, size: zeroBytes, sha256: digest, contents: produceZeros)]
    guard FileManager.default.createFile(atPath: path, contents: nil),
        let handle = FileHandle(forWritingAtPath: path)
    else { throw CocoaError(.fileWriteUnknown) }
    defer { try? handle.close() }
    var written = 0
    _ = try BackupArchive.write(manifest: contents.manifest, files: files) { piece in
        try handle.write(contentsOf: piece)
        written += piece.count
    }
    return written
}

/// The peak resident memory of process `pid` so far (VmHWM in /proc/PID/status), bytes.
func peakResidentBytes(_ pid: pid_t) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kib = Int(line.dropFirst("VmHWM:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
    else { throw CocoaError(.fileReadCorruptFile) }
    return kib * 1024
}
