import Foundation
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC

/// `restore remote-manager-backup check SOURCE`: every check a restore of SOURCE would make before its
/// lease, one by one, changing nothing (docs/device-agent.md, "Checking a backup first").
extension RestoreSession {
    /// One check as printed.
    public struct CheckResult: Sendable, Equatable {
        /// What was checked ("archive", "this device (R3, R4)", "coordinator: order (R7)").
        public var name: String
        /// Whether it passed.
        public var passed: Bool
    }

    /// What `check` found.
    public struct CheckReport: Sendable {
        /// Every check, in the order printed.
        public var checks: [CheckResult]
        /// A newer backup of the device than the one checked (a warning), as the coordinator said.
        public var newerBackup: Rampart_Restore_V1_NewerBackup?

        /// Every check passed: a restore of the backup would be granted its lease now.
        public var passed: Bool { !checks.isEmpty && checks.allSatisfy(\.passed) }
        /// The checks that failed.
        public var failed: [String] { checks.filter { !$0.passed }.map(\.name) }
    }

    /// Runs every check a restore of `source` makes before its lease, and prints each with `ok` or
    /// `failed` and a summary: the fetch, the archive (manifest, hashes, extraction safety, not a cluster
    /// bundle), the backup's contents (B11, B12), this device's facts (R3, R4), then — when the archive
    /// could be read — the restore coordinator's checks (`CheckRestore`: R3–R8, R12, R14 and the order of
    /// restores, from RequestLease's own code) and whether a newer backup exists. Nothing is written, no
    /// lease is asked for, no step is reported; a download is removed afterwards. Never throws.
    public func check(_ source: BackupSource) async -> CheckReport {
        var report = CheckReport(checks: [])
        func record(_ name: String, passed: Bool, _ text: String, more: [String] = []) {
            report.checks.append(CheckResult(name: name, passed: passed))
            console.line("check: \(passed ? "ok    " : "failed") \(name): \(text)")
            for line in more { console.line("check:        \(line)") }
        }
        func summary(_ file: String, coordinator: String = "") {
            let tail = "Nothing was written and no lease was taken."
            if report.passed {
                console.line(
                    "check: passed: all \(report.checks.count) checks passed; a restore of \(file) would be granted a "
                        + "lease now. \(tail)")
            } else {
                console.line(
                    "check: failed: \(report.failed.count) of \(report.checks.count) checks failed ("
                        + report.failed.joined(separator: "; ") + "); a restore of \(file) would be refused"
                        + (coordinator.isEmpty ? "" : " (\(coordinator))") + ". \(tail)")
            }
        }

        let lock: RestoreLock
        do throws(RestoreError) {
            lock = try RestoreLock(directory: directory)
        } catch {
            record("device", passed: false, error.message)
            summary(source.fileName, coordinator: "the restore coordinator was not asked")
            return report
        }
        defer { withExtendedLifetime(lock) {} }
        let folder: DeviceFolder
        do {
            folder = try DeviceFolder.open(directory)
        } catch {
            record("device", passed: false, "the device folder cannot be opened: \(error)")
            summary(source.fileName, coordinator: "the restore coordinator was not asked")
            return report
        }
        logger.notice("restore check started", metadata: ["source": "\(source)", "file": "\(source.fileName)"])
        console.line("check: fetching \(source)")
        let fetched: FetchedBackup
        do throws(RestoreError) {
            fetched = try await BackupFetcher.fetch(
                source, directory: directory, settings: configuration.fetch, logger: logger)
        } catch {
            record("fetch", passed: false, error.message)
            summary(source.fileName, coordinator: "the restore coordinator was not asked")
            return report
        }
        defer { fetched.removeIfTemporary() }
        record(
            "fetch", passed: true,
            fetched.isTemporary ? "downloaded \(fetched.fileName) (removed after the check)" : "backups/\(fetched.fileName)")

        // The device's own checks, as a restore makes them (RestorePreflight), all at once.
        let inspection: RestorePreflight.Inspection
        do throws(RestoreError) {
            let file = try fetched.open(maxBytes: configuration.fetch.maxBytes)
            inspection = try RestorePreflight.inspect(.file(file), fileName: fetched.fileName, device: folder.facts)
        } catch {
            record("archive", passed: false, error.message)
            summary(fetched.fileName, coordinator: "the restore coordinator was not asked")
            return report
        }
        let listing = inspection.listing
        let manifest = listing.manifest
        record(
            "archive", passed: true,
            "\(fetched.fileName): \(listing.byteCount) bytes, SHA-256 \(listing.archiveSHA256); manifest.json and "
                + "\(listing.files.count) files match their SHA-256; every path stays inside the configuration folder")
        console.line(
            "check: backup of \(manifest.deviceName) (device \(manifest.deviceId), \(manifest.role.rawValue)), taken "
                + "\(manifest.createdAt) on \(manifest.software.version) patch \(manifest.software.patch), "
                + "management IP \(manifest.managementIp)")
        if let registration = inspection.registration, inspection.contentProblems.isEmpty {
            record(
                "backup contents (B11, B12)", passed: true,
                "private keys held decrypted; manager-registration.json names device \(registration.deviceId) of manager "
                    + "\(registration.managerId)")
        } else {
            let problems = inspection.contentProblems.map(\.message)
            record("backup contents (B11, B12)", passed: false, problems.first ?? "", more: Array(problems.dropFirst()))
        }
        let facts = folder.facts
        if inspection.differences.isEmpty {
            record(
                "this device (R3, R4)", passed: true,
                "model \(facts.model), \(facts.networkModules) network module(s), interfaces "
                    + "\(Self.describe(facts.interfaces)), software \(facts.software) patch \(facts.patch), as in the backup")
        } else {
            record(
                "this device (R3, R4)", passed: false, inspection.differences[0],
                more: Array(inspection.differences.dropFirst()))
        }

        // The coordinator's checks: RequestLease's own, answered one by one without a lease.
        console.line("check: asking the restore coordinator (CheckRestore: no lease is granted, nothing is recorded)")
        let answer: Rampart_Restore_V1_CheckRestoreResponse
        do {
            answer = try await coordinator.checkRestore(
                leaseRequest(listing, fileName: fetched.fileName, facts: facts))
        } catch let error as RPCError where ![.unavailable, .deadlineExceeded, .cancelled].contains(error.code) {
            record("coordinator", passed: false, "the restore coordinator refused the check: \(error.message)")
            summary(fetched.fileName)
            return report
        } catch {
            record("coordinator", passed: false, "the restore coordinator cannot be reached (\(error))")
            summary(fetched.fileName, coordinator: "the restore coordinator did not answer")
            return report
        }
        for check in answer.checks {
            let name = "coordinator: \(check.name)" + (check.rules.isEmpty ? "" : " (\(check.rules))")
            if check.passed {
                record(name, passed: true, check.detail)
            } else {
                record(name, passed: false, check.reasons.first ?? "refused", more: Array(check.reasons.dropFirst()))
            }
        }
        if answer.hasNewerBackup {
            report.newerBackup = answer.newerBackup
            console.line(Self.newerWarning(answer.newerBackup, fileName: fetched.fileName, takenAt: manifest.createdAt))
        } else if !answer.backupsNotChecked.isEmpty {
            console.line("check: note: newer backups could not be looked for: \(answer.backupsNotChecked)")
        }
        logger.notice(
            "restore check finished",
            metadata: ["file": "\(fetched.fileName)", "passed": "\(report.passed)", "failed": "\(report.failed)"])
        summary(fetched.fileName)
        return report
    }
}
