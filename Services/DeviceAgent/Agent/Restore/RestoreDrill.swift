import Crypto
import Foundation
import Logging
import RampartAPI
import RampartArchive
import RampartBasics
import RampartBus
import RampartInventory
import RampartProto
import SwiftProtobuf
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A restore drill (P18): a backup restored onto a throwaway replacement — a device folder made in a
/// scratch folder with the original's hardware facts and software version and a drill serial — through
/// the device's own restore code (`RestoreSession`: `RestorePreflight`, `ConfigSwap`), under a local
/// drill lease (`DrillCoordinator`) instead of the restore coordinator's. The replacement has no bus key
/// and never connects: it cannot pose as anything. Then the restored tree is checked against the archive
/// (`DrillTreeCheck`). `device-agent drill` prints the result (`Rampart_Backup_V1_DrillReport`).
public enum RestoreDrill {
    /// A drill of one archive.
    public struct Request: Sendable {
        /// The scratch device folder to create (must not exist, or be empty).
        public var directory: String
        /// The archive file.
        public var archivePath: String
        /// Its file name (what a restore would name it: the node's file of a bundle).
        public var fileName: String
        /// The SHA-256 the archive must have (the backup record's); empty: not checked.
        public var expectedSHA256: String
        /// The original device, as inventory has it: the replacement takes its hardware facts and software.
        public var original: Rampart_Inventory_V1_Device
        /// The replacement's serial (a drill serial; never the original's).
        public var serial = RestoreDrill.drillSerial()

        /// A drill of `archivePath` for `original` in `directory`.
        public init(
            directory: String, archivePath: String, fileName: String, expectedSHA256: String,
            original: Rampart_Inventory_V1_Device
        ) {
            self.directory = directory
            self.archivePath = archivePath
            self.fileName = fileName
            self.expectedSHA256 = expectedSHA256
            self.original = original
        }
    }

    /// The replacement's facts: the original's hardware, software and management IP, a drill serial,
    /// and a small generated configuration (the restore replaces it).
    public static func replacementFacts(_ original: Rampart_Inventory_V1_Device, serial: String) -> DeviceProfile {
        DeviceProfile(
            name: original.name, serial: serial, model: original.model, platform: original.platform.label,
            hypervisor: original.hypervisor.label, software: original.software.version,
            patch: Int(original.software.patch), networkModules: Int(original.networkModules),
            interfaces: original.interfaces.map { .init(type: $0.type, count: Int($0.count)) },
            managementIp: original.managementIp, configSize: 16 * 1024)
    }

    /// A serial no appliance has: "DRILL" and ten random hex digits.
    public static func drillSerial() -> String {
        "DRILL" + String(format: "%010llX", UInt64.random(in: 0..<(1 << 40)))
    }

    /// Runs the drill; never throws: what went wrong is the report's reason.
    public static func run(_ request: Request, logger: Logger) async -> Rampart_Backup_V1_DrillReport {
        let clock = ContinuousClock()
        let start = clock.now
        var report = Rampart_Backup_V1_DrillReport()
        report.fileName = request.fileName
        func fail(_ name: String, _ why: String) -> Rampart_Backup_V1_DrillReport {
            report.checks.append(check(name, false, why))
            report.passed = false
            report.reason = report.checks.filter { !$0.passed && !$0.advisory }.map { "\($0.name): \($0.detail)" }
                .joined(separator: "; ")
            report.totalMs = milliseconds(clock.now - start)
            return report
        }

        // The replacement.
        guard request.serial != request.original.serial, InventoryRules.isValidSerial(request.serial) else {
            return fail("replacement", "'\(request.serial)' is not a drill serial (letters and digits, not the original's)")
        }
        let facts = replacementFacts(request.original, serial: request.serial)
        let folder: DeviceFolder
        let previousKey: Data
        do {
            try FileManager.default.createDirectory(
                atPath: request.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            chmod(request.directory, 0o700)  // it will hold decrypted private keys
            folder = try DeviceFolder.initialize(at: request.directory, facts: facts)
            previousKey = try Data(contentsOf: URL(fileURLWithPath: folder.keyPath))
            let copy = folder.backupsPath + "/" + request.fileName
            guard !request.fileName.contains("/"), !request.fileName.hasPrefix(".") else {
                throw AgentError("'\(request.fileName)' is not a backup file name")
            }
            try FileManager.default.copyItem(atPath: request.archivePath, toPath: copy)
        } catch {
            return fail("replacement", "the throwaway replacement could not be made: \(error)")
        }
        report.checks.append(
            check(
                "replacement", true,
                "\(facts.model) serial \(facts.serial), \(facts.networkModules) network module(s), interfaces "
                    + "\(RestoreSession.describe(facts.interfaces)), software \(facts.software) patch \(facts.patch)"))
        report.initMs = milliseconds(clock.now - start)

        // The archive's hashes, as the device checks them before anything else (and the record's SHA-256).
        let listing: BackupArchive.Listing
        do {
            let file = try ArchiveFile(path: folder.backupsPath + "/" + request.fileName, maxSize: FetchSettings().maxBytes)
            let inspection = try RestorePreflight.inspect(.file(file), fileName: request.fileName, device: facts)
            listing = inspection.listing
            report.manifestJson = listing.manifestJSON
            report.archiveSha256 = listing.archiveSHA256
            report.archiveSize = UInt64(listing.byteCount)
        } catch let error as RestoreError {
            return fail("archive hashes", error.message)
        } catch {
            return fail("archive hashes", "\(request.fileName) cannot be read: \(error)")
        }
        if !request.expectedSHA256.isEmpty, listing.archiveSHA256 != request.expectedSHA256 {
            return fail(
                "archive hashes",
                "the archive's SHA-256 is \(listing.archiveSHA256), the backup record says \(request.expectedSHA256)")
        }
        report.hashesVerified = true
        report.checks.append(
            check(
                "archive hashes", true,
                "manifest.json and \(listing.files.count) files match their SHA-256; the archive's is \(listing.archiveSHA256)"
            ))

        // The restore, through the device's own code, under a drill lease.
        let restoreStart = clock.now
        var configuration = RestoreSession.Configuration()
        configuration.user = "rampart-drill"
        configuration.rebootDelayMs = 0
        let coordinator = DrillCoordinator()
        let console = CollectingConsole()
        var sessionLogger = logger
        sessionLogger[metadataKey: "drill"] = "\(facts.serial)"
        let session = RestoreSession(
            directory: request.directory, configuration: configuration, coordinator: coordinator, console: console,
            logger: sessionLogger)
        let ending = await session.run(.local(fileName: request.fileName)) { restored in
            // The reboot: the replacement comes back as the restored device, but never on the bus.
            var device = restored.facts.inventoryDevice
            device.id = (try? restored.registration().deviceId) ?? ""
            return device
        }
        report.restoreMs = milliseconds(clock.now - restoreStart)
        report.console = console.lines
        report.steps = coordinator.steps
        let summary: ConfigSwap.Summary
        switch ending {
        case .restored(let restored):
            summary = restored.summary
        case .notRestored(let error), .restoredButNotBack(let error):
            return fail("restore", error.message)
        }
        report.checks.append(
            check(
                "restore", true,
                "restored under a drill lease (steps \(coordinator.steps.joined(separator: ", "))): \(summary.files) files, "
                    + "device \(summary.facts.name), management IP \(summary.facts.managementIp)"))

        // The restored tree against the archive.
        let checkStart = clock.now
        let restored: [String: Data]
        let newKey: Data
        do {
            let after = try DeviceFolder.open(request.directory)
            restored = Dictionary(uniqueKeysWithValues: try after.storedFiles().map { ($0.path, $0.contents) })
            newKey = try Data(contentsOf: URL(fileURLWithPath: after.keyPath))
        } catch {
            return fail("tree", "the restored device folder cannot be read: \(error)")
        }
        let tree = DrillTreeCheck.compare(
            archive: listing.files, restored: restored, newKey: newKey, previousKey: previousKey,
            removedCertificates: summary.removedVPNCertificates)
        report.files = UInt32(clamping: listing.files.count)
        report.treeEqual = tree.treeProblems.isEmpty
        report.vpnRemoved = tree.vpnProblems.isEmpty
        report.keysReencrypted = tree.keyProblems.isEmpty
        report.removedVpnCertificates = summary.removedVPNCertificates
        report.reencryptedKeys = UInt32(clamping: tree.keys)
        report.checks.append(
            check(
                "tree", tree.treeProblems.isEmpty,
                tree.treeProblems.isEmpty
                    ? "the restored tree is the archive's: \(tree.compared) files equal, \(tree.vpnFiles) VPN file(s) left out"
                    : tree.treeProblems.joined(separator: "; ")))
        report.checks.append(
            check(
                "R10", tree.vpnProblems.isEmpty,
                tree.vpnProblems.isEmpty
                    ? "no VPN configuration left; removed \(summary.removedVPNCertificates.count) VPN certificate(s)"
                        + (summary.removedVPNCertificates.isEmpty ? "" : ": " + summary.removedVPNCertificates.joined(separator: ", "))
                    : tree.vpnProblems.joined(separator: "; ")))
        report.checks.append(
            check(
                "R11", tree.keyProblems.isEmpty,
                tree.keyProblems.isEmpty
                    ? "\(tree.keys) private key(s) re-encrypted under a new device key"
                    : tree.keyProblems.joined(separator: "; ")))
        report.checkMs = milliseconds(clock.now - checkStart)
        report.totalMs = milliseconds(clock.now - start)
        let failed = report.checks.filter { !$0.passed && !$0.advisory }
        report.passed = failed.isEmpty
        report.reason = failed.map { "\($0.name): \($0.detail)" }.joined(separator: "; ")
        return report
    }

    /// The original device of `--facts`: its inventory record in protobuf JSON.
    public static func original(json: String) throws -> Rampart_Inventory_V1_Device {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        let device = try Rampart_Inventory_V1_Device(jsonString: json, options: options)
        guard !device.model.isEmpty, !device.software.version.isEmpty else {
            throw AgentError("the device record names no model or software version")
        }
        return device
    }

    /// Runs the drill and renders its report: protobuf JSON on one line (`json`), or a line per check.
    /// Returns the text and whether the backup is restorable.
    public static func runAndRender(_ request: Request, json: Bool, logger: Logger) async throws -> (String, Bool) {
        let report = await run(request, logger: logger)
        if json { return (try report.jsonString(), report.passed) }
        var lines = report.checks.map { "\($0.passed ? "ok  " : $0.advisory ? "note" : "FAIL") \($0.name): \($0.detail)" }
        lines.append(report.passed ? "restorable (\(report.totalMs) ms)" : "not restorable: \(report.reason)")
        return (lines.joined(separator: "\n"), report.passed)
    }

    static func check(_ name: String, _ passed: Bool, _ detail: String) -> Rampart_Backup_V1_DrillCheck {
        var check = Rampart_Backup_V1_DrillCheck()
        check.name = name
        check.passed = passed
        check.detail = detail
        return check
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}

/// How a restored configuration tree compares with the archive it came from (P18, R10, R11). Pure: it is
/// given the archive's listing and the restored tree's files as stored.
public enum DrillTreeCheck {
    /// What was found; each list empty when its check passed.
    public struct Result: Sendable, Equatable {
        /// Files missing, different or extra.
        public var treeProblems: [String] = []
        /// VPN files left, or certificates not reported removed (R10).
        public var vpnProblems: [String] = []
        /// Keys stored in clear, not under the new key, or still under the previous one (R11).
        public var keyProblems: [String] = []
        /// Files compared equal (keys included).
        public var compared = 0
        /// Private keys found re-encrypted.
        public var keys = 0
        /// VPN files of the archive left out.
        public var vpnFiles = 0
    }

    /// Compares `restored` (paths under config/ → contents as stored) with the archive's `archive` files:
    /// every file but VPN ones is there with the archive's SHA-256 — a private key `K.key` as `K.key.enc`,
    /// sealed under `newKey` (not `previousKey`, and `newKey` differs from it); nothing under `vpn/` is
    /// left and every VPN certificate of the archive is among `removedCertificates`; nothing else is there.
    public static func compare(
        archive: [BackupManifest.FileEntry], restored: [String: Data], newKey: Data, previousKey: Data,
        removedCertificates: [String]
    ) -> Result {
        var result = Result()
        var expected = Set<String>()
        let removed = Set(removedCertificates)
        let key = SymmetricKey(data: newKey)
        let previous = previousKey.count == 32 ? SymmetricKey(data: previousKey) : nil
        if newKey == previousKey {
            result.keyProblems.append("the device key after the restore is the one before it (R11)")
        }
        for file in archive {
            if ConfigSwap.isVPN(file.path) {
                result.vpnFiles += 1
                if let name = ConfigSwap.certificateName(file.path), !removed.contains(name) {
                    result.vpnProblems.append("VPN certificate \(name) is not reported removed")
                }
                continue
            }
            if file.path.hasSuffix(".key") {
                let stored = file.path + ".enc"
                expected.insert(stored)
                guard let sealed = restored[stored] else {
                    if restored[file.path] != nil {
                        result.keyProblems.append("\(file.path) is stored in clear (R11)")
                        expected.insert(file.path)
                    } else {
                        result.treeProblems.append("\(file.path) is missing")
                    }
                    continue
                }
                guard let clear = try? DeviceFolder.decrypt(sealed, key: key, path: stored) else {
                    result.keyProblems.append("\(stored) does not open with the new device key (R11)")
                    continue
                }
                if let previous, (try? DeviceFolder.decrypt(sealed, key: previous, path: stored)) != nil {
                    result.keyProblems.append("\(stored) still opens with the previous device key (R11)")
                }
                if SHA256.hash(data: clear).hexString != file.sha256 {
                    result.treeProblems.append("\(file.path) differs from the archive's")
                } else {
                    result.compared += 1
                    result.keys += 1
                }
                continue
            }
            expected.insert(file.path)
            guard let contents = restored[file.path] else {
                result.treeProblems.append("\(file.path) is missing")
                continue
            }
            if SHA256.hash(data: contents).hexString != file.sha256 {
                result.treeProblems.append("\(file.path) differs from the archive's")
            } else {
                result.compared += 1
            }
        }
        for path in restored.keys.sorted() where !expected.contains(path) {
            if ConfigSwap.isVPN(path) {
                result.vpnProblems.append("\(path) is left after the restore (R10)")
            } else {
                result.treeProblems.append("\(path) is not in the archive")
            }
        }
        return result
    }
}

/// The restore coordinator of a drill: grants its one lease locally, renews it, and records nothing
/// anywhere — no lease, no request, no event. It never calls the real coordinator (a drill takes no
/// restore lease of a real device, pair or cluster).
public final class DrillCoordinator: RestoreCoordinating {
    private let state = Mutex<(lease: Rampart_Restore_V1_Lease, steps: [String])>((Rampart_Restore_V1_Lease(), []))

    /// A coordinator with no lease yet.
    public init() {}

    /// The steps reported, in order ("granted" first, "rejoined" last).
    public var steps: [String] { state.withLock { $0.steps } }

    public func requestLease(_ request: Rampart_Restore_V1_RequestLeaseRequest) async throws
        -> Rampart_Restore_V1_LeaseResponse
    {
        var lease = Rampart_Restore_V1_Lease()
        lease.id = "drill-" + UUID().uuidString.lowercased()
        lease.fencingToken = 1
        lease.state = .active
        lease.step = RestoreAPI.Step.granted
        lease.deviceName = (try? BackupManifest.decode(request.manifestJson).deviceName) ?? ""
        lease.expiresUnixMs = unixMillis() + 600_000
        state.withLock {
            $0.lease = lease
            $0.steps = [RestoreAPI.Step.granted]
        }
        var response = Rampart_Restore_V1_LeaseResponse()
        response.lease = lease
        return response
    }

    public func checkRestore(_ request: Rampart_Restore_V1_RequestLeaseRequest) async throws
        -> Rampart_Restore_V1_CheckRestoreResponse
    {
        Rampart_Restore_V1_CheckRestoreResponse()
    }

    public func reportStep(_ request: Rampart_Restore_V1_ReportStepRequest) async throws -> Rampart_Restore_V1_Lease {
        state.withLock {
            if $0.steps.last != request.step { $0.steps.append(request.step) }
            $0.lease.step = request.step
            $0.lease.expiresUnixMs = unixMillis() + 600_000
            return $0.lease
        }
    }

    public func reportRejoined(_ request: Rampart_Restore_V1_ReportRejoinedRequest) async throws
        -> Rampart_Restore_V1_Lease
    {
        state.withLock {
            $0.steps.append("rejoined")
            $0.lease.state = .rejoined
            return $0.lease
        }
    }

    public func reportFailed(_ request: Rampart_Restore_V1_ReportFailedRequest) async throws -> Rampart_Restore_V1_Lease {
        state.withLock {
            $0.steps.append("failed")
            $0.lease.state = .failed
            return $0.lease
        }
    }
}

/// A console that keeps what a drill's restore prints.
final class CollectingConsole: DeviceConsole {
    private let text = Mutex<[String]>([])

    var lines: [String] { text.withLock { $0 } }

    func line(_ line: String) { text.withLock { $0.append(line) } }

    func prompt(_ prompt: String) { text.withLock { $0.append(prompt) } }
}
