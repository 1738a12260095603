import Foundation
import Logging
import RampartAPI
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC

#if canImport(Glibc)
    import Glibc
#endif

/// Where the device CLI writes (its console): one line at a time, and the prompt.
public protocol DeviceConsole: Sendable {
    /// Writes `text` and a line end.
    func line(_ text: String)
    /// Writes `text` (the prompt) without a line end, flushed.
    func prompt(_ text: String)
}

/// The process's standard output, written unbuffered (so a pipe sees every line and prompt at once).
public struct StandardConsole: DeviceConsole {
    /// The console on file descriptor 1.
    public init() {}

    public func line(_ text: String) { write(text + "\n") }

    public func prompt(_ text: String) { write(text) }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                Glibc.write(STDOUT_FILENO, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return  // the console went away: nothing to tell anyone
            }
            offset += written
        }
    }
}

/// One `restore remote-manager-backup ...` at the device CLI (R1, R2), from fetching the backup to the
/// restored device's rejoin:
///
/// 1. fetch the archive (scp, signed URL, or the local backup folder);
/// 2. verify it (`RestorePreflight`, streaming the file): member hashes, safe paths, no cluster bundle,
///    this device's model, network modules, interfaces, version and patch (R3, R4) — a refusal writes nothing;
/// 3. `RequestLease` with manifest.json as stored, the archive's SHA-256 and name, this device's facts and
///    the CLI user — a refusal prints the coordinator's message and writes nothing; a grant that names a
///    newer backup of the device prints a warning and goes on;
/// 4. under the lease (renewed in the background every third of its time to live): `applying`, stage
///    the new device (`ConfigSwap.prepare`), check the lease once more, swap it in, `applied` (with the
///    removed VPN certificates) and `rebooting`, then commit — a lost lease before the commit puts the
///    previous device back;
/// 5. log the CLI user out, wait the reboot delay, boot as the restored device (`boot`: find it in
///    inventory by the restored registration's id, report presence), then `ReportRejoined`.
public struct RestoreSession: Sendable {
    /// Settings of a restore.
    public struct Configuration: Sendable {
        /// The CLI user (for the lease's history).
        public var user = "admin"
        /// The simulated reboot, ms.
        public var rebootDelayMs: Int64 = 3000
        /// How backups are fetched.
        public var fetch = FetchSettings()
        /// Failure injection points of the apply step (tests).
        public var hooks = ConfigSwap.Hooks()
        /// Test switch: after staging, before the lease is confirmed and anything is written, wait for this.
        public var holdBeforeWrite: Hold?
        /// Test switch: the simulated reboot lasts (beyond the reboot delay) until this ends.
        public var holdReboot: Hold?

        /// Defaults: user "admin", 3 s reboot.
        public init() {}
    }

    /// A point where a restore waits for a test to let it go on (`device-agent cli --hold-before-write`,
    /// `--hold-reboot`), so that a test can act there (end the lease by force) without timing. The lease
    /// keeps being renewed while it waits.
    public struct Hold: Sendable {
        /// What it waits for, for the console.
        public var description: String
        /// Returns when the restore may go on; throws when it is cancelled.
        public var wait: @Sendable () async throws -> Void

        /// A hold waiting for `wait`.
        public init(_ description: String, wait: @escaping @Sendable () async throws -> Void) {
            self.description = description
            self.wait = wait
        }

        /// Waits until the file `path` exists (looked for every 50 ms).
        public static func untilFileExists(_ path: String) -> Hold {
            Hold("until \(path) exists") {
                while !FileManager.default.fileExists(atPath: path) { try await Task.sleep(for: .milliseconds(50)) }
            }
        }
    }

    /// A device that restored and came back.
    public struct Restored: Sendable {
        /// Its folder, as restored.
        public var folder: DeviceFolder
        /// Its inventory record (found by the restored registration's id).
        public var device: Rampart_Inventory_V1_Device
        /// Whether the coordinator took the rejoin (the lease ended REJOINED).
        public var rejoined: Bool
        /// What the restore changed.
        public var summary: ConfigSwap.Summary
    }

    /// How a restore ended.
    public enum Ending: Sendable {
        /// Nothing was written; the CLI session goes on.
        case notRestored(RestoreError)
        /// Restored, rebooted and back on the bus as the restored device.
        case restored(Restored)
        /// Restored and rebooted, but the restored device could not come back (inventory lookup,
        /// presence); the CLI user is logged out all the same.
        case restoredButNotBack(RestoreError)
    }

    /// Brings the restored device back after its reboot: finds it in inventory and reports it connected.
    public typealias Boot = @Sendable (DeviceFolder) async throws -> Rampart_Inventory_V1_Device

    let directory: String
    let configuration: Configuration
    let coordinator: any RestoreCoordinating
    let console: any DeviceConsole
    let logger: Logger

    /// A restore of the device in `directory`.
    public init(
        directory: String, configuration: Configuration, coordinator: any RestoreCoordinating,
        console: any DeviceConsole,
        logger: Logger
    ) {
        self.directory = directory
        self.configuration = configuration
        self.coordinator = coordinator
        self.console = console
        var logger = logger
        logger[metadataKey: "cli-user"] = "\(configuration.user)"
        self.logger = logger
    }

    /// Runs the restore of `source`; prints progress and errors on the console; never throws.
    public func run(_ source: BackupSource, boot: Boot) async -> Ending {
        let lock: RestoreLock
        do throws(RestoreError) {
            lock = try RestoreLock(directory: directory)
        } catch {
            return refuse(error)
        }
        defer { withExtendedLifetime(lock) {} }
        let folder: DeviceFolder
        do {
            folder = try DeviceFolder.open(directory)
        } catch {
            return refuse(RestoreError(.apply, "the device folder cannot be opened: \(error)"))
        }
        var metadata: Logger.Metadata = ["source": "\(source)", "file": "\(source.fileName)"]
        logger.notice("restore started", metadata: metadata)
        console.line("restore: fetching \(source)")
        let fetched: FetchedBackup
        do throws(RestoreError) {
            fetched = try await BackupFetcher.fetch(
                source, directory: directory, settings: configuration.fetch, logger: logger)
        } catch {
            return refuse(error)
        }
        defer { fetched.removeIfTemporary() }
        let backup: VerifiedBackup
        do throws(RestoreError) {
            // Streamed: verified, then staged, a buffer at a time from the open file (docs/benchmarks.md,
            // "Restore memory").
            let file = try fetched.open(maxBytes: configuration.fetch.maxBytes)
            backup = try RestorePreflight.verify(file, fileName: fetched.fileName, device: folder.facts)
            console.line("restore: \(fetched.fileName): \(backup.byteCount) bytes, SHA-256 \(backup.archiveSHA256)")
        } catch {
            return refuse(error)
        }
        let manifest = backup.manifest
        metadata["device-id"] = "\(manifest.deviceId)"
        metadata["archive-sha256"] = "\(backup.archiveSHA256)"
        console.line(
            "restore: archive verified: manifest.json and \(backup.listing.files.count) files match their SHA-256; "
                + "every path stays inside the configuration folder")
        console.line(
            "restore: backup of \(manifest.deviceName) (device \(manifest.deviceId), \(manifest.role.rawValue)), taken "
                + "\(manifest.createdAt) on \(manifest.software.version) patch \(manifest.software.patch), "
                + "management IP \(manifest.managementIp)")
        console.line(
            "restore: this device matches it: model \(folder.facts.model), \(folder.facts.networkModules) network module(s), "
                + "interfaces \(Self.describe(folder.facts.interfaces)), software \(folder.facts.software) patch \(folder.facts.patch)"
        )

        console.line("restore: asking the restore coordinator for a lease")
        let lease: Rampart_Restore_V1_Lease
        do throws(RestoreError) {
            let granted = try await requestLease(backup, facts: folder.facts)
            lease = granted.lease
            if granted.hasNewerBackup {
                // A warning, not a refusal: the operator named this backup (docs/device-agent.md).
                console.line(
                    Self.newerWarning(granted.newerBackup, fileName: backup.fileName, takenAt: manifest.createdAt))
                logger.notice(
                    "a newer backup exists than the one restored",
                    metadata: metadata.merging(["newer": "\(granted.newerBackup.fileName)"]) { $1 })
            }
        } catch {
            logger.notice("restore refused", metadata: metadata.merging(["reason": "\(error.message)"]) { $1 })
            return refuse(error)
        }
        metadata["lease-id"] = "\(lease.id)"
        metadata["fencing-token"] = "\(lease.fencingToken)"
        let keeper = LeaseKeeper(lease: lease, coordinator: coordinator, logger: logger)
        let interval = await keeper.renewalIntervalMs
        logger.notice("restore lease granted", metadata: metadata)
        console.line(
            "restore: lease \(lease.id) granted for \(lease.deviceName.isEmpty ? manifest.deviceName : lease.deviceName) "
                + "(fencing token \(lease.fencingToken); renewed every \(Self.seconds(interval)))")
        do {
            return try await withThrowingTaskGroup(of: Void.self, returning: Ending.self) { group in
                group.addTask { await keeper.keepAlive() }
                defer { group.cancelAll() }
                return try await restore(backup, folder: folder, keeper: keeper, boot: boot, metadata: metadata)
            }
        } catch let error as RestoreError {
            logger.error("restore stopped", metadata: metadata.merging(["error": "\(error.message)"]) { $1 })
            return refuse(error)
        } catch {
            return refuse(RestoreError(.apply, "the restore stopped: \(error)"))
        }
    }

    /// Steps 4 and 5 under the lease.
    private func restore(
        _ backup: VerifiedBackup, folder: DeviceFolder, keeper: LeaseKeeper, boot: Boot, metadata: Logger.Metadata
    ) async throws(RestoreError) -> Ending {
        try await keeper.report(RestoreAPI.Step.applying, detail: "applying \(backup.fileName)")
        console.line("restore: applying the configuration")
        var swap: ConfigSwap
        do throws(RestoreError) {
            swap = try ConfigSwap.prepare(folder: folder, backup: backup, hooks: configuration.hooks)
        } catch {
            await keeper.failed(error.message)
            throw error
        }
        if let hold = configuration.holdBeforeWrite {
            console.line("restore: holding before writing \(hold.description) (test switch)")
            do {
                try await hold.wait()
            } catch {
                swap.discard()
                await keeper.failed("interrupted while held before writing")
                throw RestoreError(.apply, "the restore was interrupted before writing; nothing was written")
            }
        }
        // Fencing: the lease must still be ours right before anything is written.
        do throws(RestoreError) {
            try await keeper.report(RestoreAPI.Step.applying, detail: "configuration staged; writing it")
        } catch {
            swap.discard()
            if error.kind != .leaseLost {
                await keeper.failed("the lease could not be confirmed before writing: \(error.message)")
            }
            throw RestoreError(error.kind, error.message + "; nothing was written")
        }
        do throws(RestoreError) {
            try swap.swap()
        } catch {
            await keeper.failed(error.message)
            throw error
        }
        let summary = swap.summary
        // Until "rebooting" is recorded under our token, the previous device can still come back.
        do throws(RestoreError) {
            try await keeper.report(
                RestoreAPI.Step.applied,
                detail: "\(summary.files) files; management IP \(summary.facts.managementIp); "
                    + "\(summary.reencryptedKeys.count) private keys re-encrypted under a new device key",
                removedVPNCertificates: summary.removedVPNCertificates)
            try await keeper.report(RestoreAPI.Step.rebooting, detail: "rebooting in \(configuration.rebootDelayMs) ms")
            try swap.commit()
        } catch {
            do throws(RestoreError) {
                try swap.rollBack()
            } catch let rollback {
                console.line("error: \(rollback.message)")
                throw RestoreError(error.kind, error.message + "; putting the previous configuration back failed")
            }
            if error.kind != .leaseLost {
                await keeper.failed("\(error.message); the previous configuration was put back")
            }
            throw RestoreError(
                error.kind, error.message + "; the previous configuration was put back, nothing was changed")
        }
        logger.notice(
            "configuration restored",
            metadata: metadata.merging(
                [
                    "files": "\(summary.files)", "management-ip": "\(summary.facts.managementIp)",
                    "removed-vpn-certificates": "\(summary.removedVPNCertificates.joined(separator: ","))",
                ]) { $1 })
        console.line(
            "restore: configuration applied: \(summary.files) files, device name \(summary.facts.name), management IP "
                + "\(summary.facts.managementIp) (R9)")
        console.line(
            "restore: \(summary.reencryptedKeys.count) private key(s) re-encrypted under a newly generated device key (R11)"
        )
        let certificates = summary.removedVPNCertificates
        console.line(
            "restore: removed all VPN configuration and \(certificates.count) VPN certificate(s) (R10)"
                + (certificates.isEmpty ? "" : "; re-enroll: " + certificates.joined(separator: ", ")))
        console.line(
            "restore: user \(configuration.user) is logged out; the device reboots in \(configuration.rebootDelayMs) ms"
        )

        // The reboot: the lease keeps being renewed meanwhile.
        do {
            try await Task.sleep(for: .milliseconds(configuration.rebootDelayMs))
            if let hold = configuration.holdReboot {
                console.line("boot: holding the reboot \(hold.description) (test switch)")
                try await hold.wait()
            }
        } catch {
            return .restoredButNotBack(RestoreError(.boot, "the reboot was interrupted"))
        }
        let restored: DeviceFolder
        let device: Rampart_Inventory_V1_Device
        do {
            restored = try DeviceFolder.open(directory)
            console.line(
                "boot: \(restored.facts.name) (serial \(restored.facts.serial), \(restored.facts.model)), management IP "
                    + "\(restored.facts.managementIp); reconnecting to manager \(summary.managerId) as device \(summary.deviceId)"
            )
            device = try await boot(restored)
        } catch {
            let message = "the restored device could not reconnect: \(error)"
            console.line("error: \(message)")
            logger.error("restored device not back", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            // Not ReportFailed: the configuration was written. The lease expires and the operator sees why.
            return .restoredButNotBack(RestoreError(.boot, message))
        }
        console.line("boot: connected; inventory shows \(device.name) (device \(device.id)) connected")
        var rejoined = false
        if let lost = await keeper.lost {
            // Past the commit point the configuration is written: the rejoin is reported all the same.
            console.line("note: the lease ended during the reboot (\(lost.message)); reporting the rejoin anyway")
        }
        do throws(RestoreError) {
            let ended = try await keeper.rejoined()
            rejoined = true
            logger.notice("restore rejoined", metadata: metadata)
            console.line(
                "restore: complete: lease \(ended.id.isEmpty ? "?" : ended.id) ended (rejoined); the device is out of date "
                    + "until deployed; see 'rampart restore checklist \(device.name)' (R13)")
        } catch {
            console.line("error: the restore coordinator did not record the rejoin: \(error.message)")
            logger.error("rejoin not recorded", metadata: metadata.merging(["error": "\(error.message)"]) { $1 })
        }
        return .restored(Restored(folder: restored, device: device, rejoined: rejoined, summary: summary))
    }

    /// The lease request for the backup `listing` named `fileName` on the device with `facts` (RequestLease
    /// and CheckRestore take the same).
    func leaseRequest(_ listing: BackupArchive.Listing, fileName: String, facts: DeviceProfile)
        -> Rampart_Restore_V1_RequestLeaseRequest
    {
        var request = Rampart_Restore_V1_RequestLeaseRequest()
        request.manifestJson = listing.manifestJSON
        request.archiveSha256 = listing.archiveSHA256
        request.archiveFileName = fileName
        request.facts = Self.leaseFacts(facts)
        request.cliUser = configuration.user
        return request
    }

    /// RequestLease; a refusal becomes `.refused` with the coordinator's message.
    private func requestLease(_ backup: VerifiedBackup, facts: DeviceProfile) async throws(RestoreError)
        -> Rampart_Restore_V1_LeaseResponse
    {
        let request = leaseRequest(backup.listing, fileName: backup.fileName, facts: facts)
        let granted: Rampart_Restore_V1_LeaseResponse
        do {
            granted = try await coordinator.requestLease(request)
        } catch let error as RPCError {
            switch error.code {
            case .unavailable, .deadlineExceeded, .cancelled:
                throw RestoreError(
                    .coordinatorUnavailable, "the restore coordinator cannot be reached (\(error)); nothing was written"
                )
            default:
                throw RestoreError(
                    .refused(error.code), "the restore coordinator refused: \(error.message); nothing was written")
            }
        } catch {
            throw RestoreError(
                .coordinatorUnavailable, "the restore coordinator cannot be reached (\(error)); nothing was written")
        }
        guard !granted.lease.id.isEmpty else {
            throw RestoreError(
                .refused(.internal), "the restore coordinator granted a lease without an id; nothing was written")
        }
        return granted
    }

    /// The warning that the device has a backup newer than the one named (`fileName`, taken `takenAt`).
    static func newerWarning(_ newer: Rampart_Restore_V1_NewerBackup, fileName: String, takenAt: String) -> String {
        let taken = BackupManifest.timestamp(Date(timeIntervalSince1970: Double(newer.createdUnixMs) / 1000))
        return "warning: newer backup exists: \(newer.fileName) taken \(taken)"
            + (newer.bundleFileName.isEmpty ? "" : " (in cluster bundle \(newer.bundleFileName))")
            + "; \(fileName) was taken \(takenAt)"
    }

    /// This device's facts as the coordinator wants them (R3, R4): interfaces added up by type.
    public static func leaseFacts(_ facts: DeviceProfile) -> Rampart_Restore_V1_DeviceFacts {
        var result = Rampart_Restore_V1_DeviceFacts()
        result.serial = facts.serial
        result.model = facts.model
        result.platform = facts.platform
        result.hypervisor = facts.hypervisor
        result.software.version = facts.software
        result.software.patch = UInt32(clamping: facts.patch)
        result.networkModules = UInt32(clamping: facts.networkModules)
        for (type, count) in RestorePreflight.matchFacts(facts).interfaces {
            result.interfaces[type] = UInt32(clamping: count)
        }
        return result
    }

    private func refuse(_ error: RestoreError) -> Ending {
        console.line("error: \(error.message)")
        return .notRestored(error)
    }

    static func describe(_ groups: [DeviceProfile.InterfaceGroup]) -> String {
        groups.isEmpty ? "none" : groups.map { "\($0.type)=\($0.count)" }.joined(separator: ", ")
    }

    static func seconds(_ ms: Int64) -> String {
        ms % 1000 == 0 ? "\(ms / 1000) s" : String(format: "%.1f s", Double(ms) / 1000)
    }
}
