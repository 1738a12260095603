import Foundation
import Postgres
import RampartAPI
import RampartArchive
import RampartBus
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// Backups end to end over real processes: inventory, storage, backup workers, a simulated fleet.
@Suite("Backups: devices, HA pairs and clusters through workers into encrypted storage", .serialized)
struct BackupTests {
    @Test("B7, B5, B11: an HA pair gives two files named primary/secondary whose manifests name the device, role, version and patch")
    func haPair() async throws {
        var spec = FleetSpec()
        spec.pair("ha1")
        try await withBackupSystem(spec) { system in
            let (job, code) = try await system.backUp("ha1")
            #expect(code == 0 && job.state == .succeeded, "\(job)")
            let backups = try await system.backups(job: job.id).sorted { $0.fileName < $1.fileName }
            #expect(backups.count == 2)
            #expect(backups.map { $0.fileName.contains("ha1-a_primary_") } == [true, false])
            #expect(backups.map { $0.fileName.contains("ha1-b_secondary_") } == [false, true])
            for backup in backups {
                let (manifest, files) = try BackupArchive.open(try await system.download(backup))
                #expect(manifest.deviceName == backup.ownerName)
                #expect(manifest.deviceId == backup.ownerID)
                #expect(manifest.role.rawValue == backup.role.label)
                #expect(manifest.software.version == "7.4.1" && manifest.software.patch == 2, "B5: version and patch")
                #expect(!manifest.managerId.isEmpty && !manifest.managementIp.isEmpty, "B11")
                #expect(files.keys.contains { $0.hasSuffix(".key") }, "B12: private keys decrypted into the backup")
            }
        }
    }

    @Test("B8, B10: clusters as one bundle; a data node failing keeps the others; a control node failing keeps nothing")
    func clusters() async throws {
        var spec = FleetSpec()
        spec.cluster("good")
        spec.cluster("dataf", failing: ["n2"])
        spec.cluster("ctrlf", failing: ["n1"])
        try await withBackupSystem(spec) { system in
            let (good, goodCode) = try await system.backUp("cluster:good")
            #expect(goodCode == 0 && good.state == .succeeded, "\(good)")
            let bundles = try await system.backups(job: good.id)
            #expect(bundles.count == 1)
            let bundle = try #require(bundles.first)
            #expect(bundle.fileName.hasPrefix("good.") && bundle.fileName.hasSuffix(".tar.gz"))
            let members = try ClusterBundle.members(try await system.download(bundle)).map(\.fileName).sorted()
            #expect(members.count == 3)
            #expect(members.filter { $0.hasPrefix("good-n1_control_") }.count == 1)
            #expect(members.filter { $0.contains("_data_") }.count == 2)

            let (partial, partialCode) = try await system.backUp("cluster:dataf")
            #expect(partialCode == 7 && partial.state == .partiallySucceeded, "\(partial)")
            #expect(partial.tasks.first?.message.contains("dataf-n2") == true)
            let kept = try await system.backups(job: partial.id)
            #expect(kept.first?.members.map(\.deviceName).sorted() == ["dataf-n1", "dataf-n3"])

            let (cancelled, cancelledCode) = try await system.backUp("cluster:ctrlf")
            #expect(cancelledCode == 8 && cancelled.state == .failed, "\(cancelled)")
            #expect(cancelled.tasks.first?.state == .taskCancelled)
            #expect(cancelled.tasks.first?.message.contains("B10") == true)
            #expect(try await system.backups(job: cancelled.id).isEmpty, "nothing stored")

            // B8: a single node alone is refused before any job exists (exit 4, the rule named).
            let jobsBefore = try await Self.jobCount(system)
            let single = try await system.system.rampart("backup", "start", "device:good-n2", "--wait")
            #expect(single.exitCode == 4 && single.stderr.contains("B8"), "\(single)")
            #expect(try await Self.jobCount(system) == jobsBefore, "a refused request records no job")
        }
    }

    @Test("B8, L2: after a data node failed, a cluster's latest backup is per node (links export takes the older bundle too); listing by node finds its bundles")
    func clusterLatestPerNode() async throws {
        var spec = FleetSpec()
        spec.cluster("pn")
        try await withBackupSystem(spec, links: true) { system in
            let (full, fullCode) = try await system.backUp("cluster:pn")
            #expect(fullCode == 0, "\(full)")
            // pn-n2 dies; the next backup keeps the other nodes (B8, a partial bundle).
            try await RestoreCoordinatorProcessTests.power(system, "pn-n2", "off")
            try await RestoreCoordinatorProcessTests.waitForPresence(system, "pn-n2", connected: false)
            let (partial, partialCode) = try await system.backUp("cluster:pn")
            #expect(partialCode == 7 && partial.state == .partiallySucceeded, "\(partial)")
            let older = try #require(try await system.backups(job: full.id).first)
            let newer = try #require(try await system.backups(job: partial.id).first)
            #expect(!newer.members.contains { $0.deviceName == "pn-n2" } && older.members.contains { $0.deviceName == "pn-n2" })

            // links export --cluster: the newest bundle, and the older one that still holds pn-n2's file.
            let export = try await system.system.rampart("links", "export", "--cluster", "pn", "--output", "json")
            #expect(export.exitCode == 0, "\(export)")
            let links = try OperatorJSON.decode(Rampart_Links_V1_ExportBackupLinksResponse.self, from: export.stdout).links
            #expect(Set(links.map(\.backupID)) == [newer.id, older.id], "\(links.map(\.fileName))")

            // Listing by node finds the bundles holding its file.
            let listed = try await system.system.rampart("backups", "list", "--owner", "pn-n2", "--output", "json")
            let forNode = try OperatorJSON.decode(Rampart_Backup_V1_ListBackupsResponse.self, from: listed.stdout).backups
            #expect(forNode.map(\.id) == [older.id], "\(listed)")
            let forN1 = try OperatorJSON.decode(
                Rampart_Backup_V1_ListBackupsResponse.self, from: try await system.system.rampart("backups", "list", "--owner", "pn-n1", "--output", "json").stdout
            ).backups
            #expect(forN1.map(\.id) == [newer.id, older.id])
        }
    }

    /// How many jobs `rampart jobs list` shows.
    static func jobCount(_ system: BackupSystem) async throws -> Int {
        let listed = try await system.system.rampart("jobs", "list", "--limit", "1000", "--output", "json")
        #expect(listed.exitCode == 0, "\(listed)")
        return try OperatorJSON.decode(Rampart_Backup_V1_ListJobsResponse.self, from: listed.stdout).jobs.count
    }

    @Test("B2, B7: a typo never becomes a job (exit 3), a request every target of which is refused records none (exit 4); schedules alike, and a cron that never fires is refused (exit 6)")
    func typosNeverBecomeJobs() async throws {
        var spec = FleetSpec()
        spec.device("edge-1")
        spec.pair("hq")
        try await withBackupSystem(spec, links: true) { system in
            let cli = system.system
            // Unknown names in reads are "not registered" (exit 3), never an empty success.
            for arguments in [
                ["backups", "list", "--owner", "nosuch"], ["backups", "prune", "--owner", "nosuch", "--dry-run"],
                ["links", "export", "--device", "nosuch"],
            ] {
                let read = try await cli.rampart(arguments)
                #expect(read.exitCode == 3 && read.stderr.contains("nosuch") && read.stderr.contains("registered"), "\(arguments): \(read)")
            }
            let noBackups = try await cli.rampart("links", "export", "--device", "edge-1")
            #expect(noBackups.exitCode == 3 && noBackups.stderr.contains("has no backups"), "\(noBackups)")
            // Usage errors name the command and what is wrong (exit 64).
            let misspelt = try await cli.rampart("devcies", "list")
            #expect(misspelt.exitCode == 64 && misspelt.stderr.contains("did you mean 'devices'"), "\(misspelt)")
            let negative = try await cli.rampart("devices", "list", "--timeout", "-1")
            #expect(negative.exitCode == 64 && negative.stderr.contains("--timeout must be between"), "\(negative)")
            let platform = try await cli.rampart("devices", "list", "--platform", "metal")
            #expect(platform.exitCode == 64 && platform.stderr.contains("rampart devices list"), "\(platform)")

            let unknown = try await cli.rampart("backup", "start", "nosuch", "--wait")
            #expect(unknown.exitCode == 3 && unknown.stderr.contains("'nosuch'"), "\(unknown)")
            let mixed = try await cli.rampart("backup", "start", "edge-1", "edeg-2")
            #expect(mixed.exitCode == 3 && mixed.stderr.contains("'edeg-2'") && !mixed.stderr.contains("'edge-1'"), "\(mixed)")
            let peer = try await cli.rampart("backup", "start", "hq-a")
            #expect(peer.exitCode == 4 && peer.stderr.contains("B7") && peer.stderr.contains("back up hq"), "\(peer)")
            #expect(try await Self.jobCount(system) == 0, "nothing was recorded")

            let typo = try await cli.rampart("schedules", "create", "nightly", "--cron", "0 3 * * *", "--target", "edeg-2")
            #expect(typo.exitCode == 3 && typo.stderr.contains("'edeg-2'"), "\(typo)")
            let never = try await cli.rampart("schedules", "create", "never", "--cron", "0 0 31 2 *", "--target", "edge-1")
            #expect(never.exitCode == 6 && never.stderr.contains("never fires"), "\(never)")
            let good = try await cli.rampart("schedules", "create", "nightly", "--cron", "0 3 * * *", "--target", "edge-1")
            #expect(good.exitCode == 0, "\(good)")
            let retarget = try await cli.rampart("schedules", "update", "nightly", "--target", "nosuch")
            #expect(retarget.exitCode == 3, "\(retarget)")
            let listed = try await cli.rampart("schedules", "list", "--output", "json")
            let schedules = try OperatorJSON.decode(Rampart_Backup_V1_ListSchedulesResponse.self, from: listed.stdout).schedules
            // (Besides the installation's default weekly schedule, B4.)
            let mine = schedules.filter { $0.name == "nightly" || $0.name == "never" }
            #expect(mine.map(\.name) == ["nightly"] && mine.first?.targets.map(\.ref) == ["edge-1"], "\(schedules)")

            // Some refused among runnable ones: the job runs, the refused task says why.
            let (job, code) = try await system.backUp("edge-1", "hq-b")
            #expect(code == 7 && job.tasks.contains { $0.state == .refused }, "\(job)")
        }
    }

    @Test("B4: a schedule's target unregistered later is shown and published; registered again, that too; the slot runs the rest")
    func scheduleTargetUnregistered() async throws {
        var spec = FleetSpec()
        spec.device("fw-stay")
        spec.device("fw-gone")
        try await withBackupSystem(spec) { system in
            let cli = system.system
            let created = try await cli.rampart(
                "schedules", "create", "nightly", "--cron", "0 3 * * *", "--target", "fw-stay", "--target", "device:fw-gone")
            #expect(created.exitCode == 0, "\(created)")
            let gone = try #require(spec.devices.first { $0.name == "fw-gone" })
            let unregistered = try await cli.rampart("devices", "unregister", "fw-gone")
            #expect(unregistered.exitCode == 0, "\(unregistered)")

            let missing = try await cli.rampart(
                "events", "tail", "--since", "0", "--topic", "backup.schedule.target-missing", "--count", "1", "--follow",
                "--timeout", "30", "--output", "json")
            #expect(missing.exitCode == 0 && missing.stdout.contains("\"target\":\"fw-gone\""), "\(missing)")
            let shown = try await cli.rampart("schedules", "show", "nightly", "--output", "json")
            let schedule = try OperatorJSON.decode(Rampart_Backup_V1_Schedule.self, from: shown.stdout)
            #expect(schedule.missingTargets == ["fw-gone"], "\(shown)")
            let table = try await cli.rampart("schedules", "list")
            #expect(table.stdout.contains("device:fw-gone (not registered)") && !table.stdout.contains("fw-stay (not"), "\(table)")

            // Named by hand, a gone target is "not registered" before any job is made.
            let byHand = try await cli.rampart("backup", "start", "fw-stay", "device:fw-gone")
            #expect(byHand.exitCode == 3 && byHand.stderr.contains("no device named 'fw-gone' is registered"), "\(byHand)")

            let again = try await cli.rampart(
                "devices", "register", "fw-gone", "--serial", gone.serial, "--model", gone.model, "--platform", gone.platform,
                "--software", gone.software, "--patch", "\(gone.patch)", "--management-ip", gone.managementIp)
            #expect(again.exitCode == 0, "\(again)")
            let found = try await cli.rampart(
                "events", "tail", "--since", "0", "--topic", "backup.schedule.target-found", "--count", "1", "--follow",
                "--timeout", "30", "--output", "json")
            #expect(found.exitCode == 0 && found.stdout.contains("\"target\":\"fw-gone\""), "\(found)")
            let after = try OperatorJSON.decode(
                Rampart_Backup_V1_Schedule.self, from: try await cli.rampart("schedules", "show", "nightly", "--output", "json").stdout)
            #expect(after.missingTargets.isEmpty, "\(after)")
        }
    }

    @Test("B13: progress shows: jobs show and backup start --wait give each target's percentage, rising to 100; backup.job.progress events by quarter")
    func progressShows() async throws {
        var spec = FleetSpec()
        // 8 one-MiB chunks, 300 ms each: a few seconds of export to watch.
        spec.configSize = "8MiB"
        spec.device("fw-prog", slowExportMs: 300)
        try await withBackupSystem(spec) { system in
            let client = system.system.client()
            defer { client.close() }
            let waited = Task { try await system.system.rampart("backup", "start", "fw-prog", "--wait", "--timeout", "120") }
            // Watch the job the CLI started, through `jobs show`, until it ends.
            var seen: [UInt32] = []
            let job: Rampart_Backup_V1_Job = try await eventually("the job ends", timeout: .seconds(120), every: .milliseconds(100)) {
                () -> (Rampart_Backup_V1_Job?, String) in
                let listed = try await system.system.rampart("jobs", "list", "--output", "json")
                let jobs = try OperatorJSON.decode(Rampart_Backup_V1_ListJobsResponse.self, from: listed.stdout).jobs
                guard let id = jobs.first?.id else { return (nil, listed.stdout) }
                let shown = try await system.system.rampart("jobs", "show", id, "--output", "json")
                let job = try OperatorJSON.decode(Rampart_Backup_V1_Job.self, from: shown.stdout)
                if let percent = job.tasks.first?.progressPercent, seen.last != percent { seen.append(percent) }
                return (job.state.isFinished ? job : nil, "\(job)")
            }
            #expect(job.state == .succeeded, "\(job)")
            #expect(seen.contains { $0 > 0 && $0 < 100 }, "a percentage between 0 and 100 was shown: \(seen)")
            #expect(seen == seen.sorted() && seen.last == 100, "it only rises, to 100: \(seen)")
            let cli = try await waited.value
            #expect(cli.exitCode == 0, "\(cli)")
            let lines = cli.stdout.split(separator: "\n").filter { $0.contains("fw-prog") && $0.contains("%") }
            #expect(lines.count >= 2 && lines.last?.contains("100%") == true, "the CLI printed each change of the task's line: \(cli.stdout)")
            let events = try await system.system.rampart(
                "events", "tail", "--since", "0", "--topic", "backup.job.progress", "--count", "1000", "--output", "json")
            let percents = try events.stdout.split(separator: "\n").map { try OperatorJSON.decode(Rampart_Bus_V1_Event.self, from: String($0)) }
                .filter { $0.subject == job.id }.compactMap { $0.attributes["percent"] }
            let quarters = percents.compactMap(Int.init).map { $0 / 25 }
            #expect(quarters.count >= 2 && quarters == Array(Set(quarters)).sorted(), "backup.job.progress once per quarter entered: \(percents)")
        }
    }

    @Test("B9: a cluster's nodes are all registered: a cluster with an unregistered node cannot be made, a node cannot be unregistered from it")
    func everyNodeRegistered() async throws {
        var spec = FleetSpec()
        spec.cluster("cb")
        spec.device("fw-loose")
        try await withBackupSystem(spec) { system in
            let cli = system.system
            let made = try await cli.rampart("clusters", "register", "cb2", "--control", "fw-loose", "--data", "nosuch-node")
            #expect(made.exitCode == 3 && made.stderr.contains("nosuch-node"), "\(made)")
            let gone = try await cli.rampart("devices", "unregister", "cb-n3")
            #expect(gone.exitCode == 4 && gone.stderr.contains("cluster"), "\(gone)")
            let (job, code) = try await system.backUp("cluster:cb")
            #expect(code == 0 && job.tasks.map(\.state) == [.taskSucceeded], "every node registered: the cluster backs up: \(job)")
            let bundles = try await system.backups(job: job.id)
            #expect(bundles.count == 1 && bundles.first?.members.count == 3, "one bundle, a file per node: \(bundles)")
        }
    }

    @Test("B2, B3: one request for several targets; virtual on KVM refused with a reason, VMware backed up")
    func supportMatrix() async throws {
        var spec = FleetSpec()
        spec.device("fw-phys")
        spec.device("fw-vmw", model: "FTDv50", platform: "virtual", hypervisor: "vmware")
        spec.device("fw-kvm", model: "FTDv50", platform: "virtual", hypervisor: "kvm")
        try await withBackupSystem(spec) { system in
            let (job, code) = try await system.backUp("fw-phys", "fw-vmw", "fw-kvm")
            #expect(code == 7 && job.state == .partiallySucceeded, "\(job)")
            let states = Dictionary(uniqueKeysWithValues: job.tasks.map { ($0.targetName, $0.state) })
            #expect(states == ["fw-phys": .taskSucceeded, "fw-vmw": .taskSucceeded, "fw-kvm": .refused])
            let refusal = job.tasks.first { $0.targetName == "fw-kvm" }?.message ?? ""
            #expect(refusal.contains("KVM") && refusal.contains("VMware"), "\(refusal)")
            #expect(try await system.backups(job: job.id).count == 2)

            // Lifecycle: every process (agents, workers, storage, inventory, bus) ends on SIGTERM by itself.
            let stuck = await system.system.stop()
            #expect(stuck.isEmpty, "not shut down gracefully within 5 s: \(stuck)")
        }
    }

    @Test("L1, B6: a flipped bit in a stored object makes the download (written only when its SHA-256 checks out) and verify fail loudly")
    func flippedBit() async throws {
        var spec = FleetSpec()
        spec.device("fw-1")
        try await withBackupSystem(spec) { system in
            let (job, code) = try await system.backUp("fw-1")
            #expect(code == 0, "\(job)")
            let backup = try #require(try await system.backups(job: job.id).first)
            let verifiedBefore = try await system.system.rampart("storage", "verify")
            #expect(verifiedBefore.exitCode == 0, "\(verifiedBefore)")

            try system.flipBit(of: backup)

            let download = try await system.system.rampart(
                "backups", "download", backup.id, "-o", system.system.logDirectory + "/damaged.tar")
            #expect(download.exitCode == 11, "\(download)")
            #expect(download.stderr.contains("DATA_LOSS"), "\(download)")
            #expect(!FileManager.default.fileExists(atPath: system.system.logDirectory + "/damaged.tar"))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: system.system.logDirectory)
                .filter { $0.hasSuffix(".partial") }
            #expect(leftovers.isEmpty, "a refused download leaves no partial file: \(leftovers)")
            let verify = try await system.system.rampart("storage", "verify")
            #expect(verify.exitCode == 10 && verify.stdout.contains(backup.objectID), "\(verify)")
        }
    }

    @Test("L1: the CLI never destroys an operator's file: -o DIR/ writes into DIR, an existing file needs --force, errors are clear")
    func downloadsNeverDestroy() async throws {
        var spec = FleetSpec()
        spec.device("fw-keep")
        try await withBackupSystem(spec, links: true) { system in
            let (job, code) = try await system.backUp("fw-keep")
            #expect(code == 0, "\(job)")
            let backup = try #require(try await system.backups(job: job.id).first)
            let folder = system.system.logDirectory + "/t1"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let precious = folder + "/notes.txt"
            try Data("keep me\n".utf8).write(to: URL(fileURLWithPath: precious))
            func download(_ arguments: String...) async throws -> ChildProcess.Result {
                try await system.system.rampart(["backups", "download", backup.id] + arguments)
            }
            func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

            // A folder, with or without the final slash: the file goes inside it, the folder's files stay.
            let withSlash = try await download("-o", folder + "/")
            #expect(withSlash.exitCode == 0, "\(withSlash)")
            #expect(contents(precious) == Data("keep me\n".utf8))
            let written = try #require(contents(folder + "/" + backup.fileName), "\(withSlash)")
            #expect(written.count == Int(backup.size))

            // Again: the existing file is refused (exit 4) and untouched, with or without the slash.
            for target in [folder, folder + "/"] {
                let again = try await download("-o", target)
                #expect(again.exitCode == 4 && again.stderr.contains("exists") && again.stderr.contains("--force"), "\(again)")
            }
            try Data("an older download\n".utf8).write(to: URL(fileURLWithPath: precious))
            let overFile = try await download("-o", precious)
            #expect(overFile.exitCode == 4, "\(overFile)")
            #expect(contents(precious) == Data("an older download\n".utf8), "a refused download changes nothing")
            let forced = try await download("-o", precious, "--force")
            #expect(forced.exitCode == 0, "\(forced)")
            #expect(contents(precious) == written, "--force replaces the file with the verified download")

            // A folder that does not exist: a clear message, exit 1, no usage text, nothing created.
            let missing = try await download("-o", system.system.logDirectory + "/no-such-folder/")
            #expect(missing.exitCode == 1 && missing.stderr.contains("not a folder") && !missing.stderr.contains("USAGE"), "\(missing)")
            let missingParent = try await download("-o", system.system.logDirectory + "/no-such-folder/x.tar")
            #expect(missingParent.exitCode == 1 && missingParent.stderr.contains("does not exist"), "\(missingParent)")
            #expect(!FileManager.default.fileExists(atPath: system.system.logDirectory + "/no-such-folder"))
            let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
            #expect(names == [backup.fileName, "notes.txt"].sorted(), "no partial files left: \(names)")

            // `links export --csv`: an existing file is refused before anything is exported; a folder gets a new file.
            let csvOverFile = try await system.system.rampart(["links", "export", "--device", "fw-keep", "--csv", precious])
            #expect(csvOverFile.exitCode == 4, "\(csvOverFile)")
            #expect(contents(precious) == written)
            let csvInFolder = try await system.system.rampart(["links", "export", "--device", "fw-keep", "--csv", folder])
            #expect(csvInFolder.exitCode == 0, "\(csvInFolder)")
            let csvs = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".csv") }
            #expect(csvs.count == 1, "\(csvs)")
            // `backups extract` onto an existing file: refused the same way (the bundle is read first).
            let extract = try await system.system.rampart(["backups", "extract", folder + "/" + backup.fileName, "--node", "x", "-o", precious])
            #expect(extract.exitCode != 0, "\(extract)")
            #expect(contents(precious) == written, "a failed extract leaves the file as it was")
        }
    }

    @Test("Queue: kill -9 of the worker running a task → another worker finishes it, with exactly one backup record")
    func workerKilled() async throws {
        var spec = FleetSpec()
        spec.configSize = "4MiB"
        spec.device("fw-slow", slowExportMs: 700)
        try await withBackupSystem(spec, workers: 2, leaseSeconds: 3) { system in
            let client = system.system.client()
            defer { client.close() }
            var request = Rampart_Backup_V1_StartBackupRequest()
            var target = Rampart_Backup_V1_Target()
            target.ref = "fw-slow"
            request.targets = [target]
            let started: Rampart_Backup_V1_JobResponse = try await client.call(
                BackupAPI.startBackup, request)
            // Find the worker that took it, and kill it mid-export.
            var owner: String?
            for _ in 0..<100 where owner == nil {
                try await Task.sleep(for: .milliseconds(100))
                let job = try await getJob(client, started.job.id)
                if let task = job.tasks.first, task.state == .taskRunning, task.progressPercent > 0 {
                    owner = try await leaseOwner(system, task.id)
                }
            }
            let victim = try #require(owner)
            system.workers[victim == "worker-1" ? 0 : 1].kill9()

            var finished = try await getJob(client, started.job.id)
            for _ in 0..<300 where !finished.state.isFinished {
                try await Task.sleep(for: .milliseconds(100))
                finished = try await getJob(client, started.job.id)
            }
            #expect(finished.state == .succeeded, "\(finished)")
            #expect(finished.tasks.first?.attempts == 2)
            #expect(try await system.backups(job: started.job.id).count == 1, "exactly one backup record")
        }
    }

    @Test("B4: a fresh installation has a weekly schedule; one due slot with three workers makes one job")
    func schedules() async throws {
        var spec = FleetSpec()
        spec.device("fw-1")
        try await withBackupSystem(spec, workers: 3) { system in
            let list = try await system.system.rampart("schedules", "list", "--output", "json")
            let schedules = try OperatorJSON.decode(Rampart_Backup_V1_ListSchedulesResponse.self, from: list.stdout).schedules
            let weekly = try #require(schedules.first { $0.name == "weekly" })
            #expect(weekly.cron == "0 2 * * 0" && !weekly.paused)
            #expect(weekly.targets.map(\.kind) == [.allDevices])

            // Every minute: within the next minute a slot passes, and the three workers race for it.
            let created = try await system.system.rampart(
                "schedules", "create", "every-minute", "--cron", "* * * * *", "--target", "fw-1")
            #expect(created.exitCode == 0, "\(created)")
            let connection = try PostgresConnection(connectionString: system.system.database)
            var runs: [String] = []
            for _ in 0..<700 where runs.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                runs = try connection.query(
                    """
                    SELECT r.job_id::text AS job FROM backup.schedule_runs r JOIN backup.schedules s ON s.id = r.schedule_id
                    WHERE s.name = 'every-minute'
                    """
                ).map { try $0.decode("job") }
            }
            #expect(runs.count >= 1)
            // A worker whose scheduler pass saw the slot due before it was taken may still be at it (planning,
            // then finding the slot claimed, or, if that were broken, making a second job). A worker's passes
            // run one after another, so once each worker has begun a pass after the run was recorded, none
            // is still at that slot: wait for that, seen in pg_stat_activity by the application_name each
            // worker's connections carry (BackupSystem) and the query a pass begins with (ScheduleStore.all).
            let database = system.system.database
            let recorded = try #require(
                try await onOwnThread {
                    try PostgresConnection(connectionString: database).query("SELECT clock_timestamp() AS t").first?
                        .decode("t", as: Date.self)
                })
            var passed: Set<String> = []
            try await eventually("every worker has begun a scheduler pass since the slot was taken", every: .milliseconds(50)) {
                let seen: [String] = try await onOwnThread {
                    try PostgresConnection(connectionString: database).query(
                        """
                        SELECT DISTINCT application_name AS worker FROM pg_stat_activity
                        WHERE datname = current_database() AND application_name LIKE 'worker-%'
                          AND query LIKE '%FROM backup.schedules%ORDER BY name%' AND query_start > \(recorded)
                        """
                    ).map { try $0.decode("worker") }
                }
                passed.formUnion(seen)
                return (passed.count == 3 ? () : nil, "passes begun since \(recorded) by \(passed.sorted())")
            }
            let jobs = try connection.query(
                "SELECT count(*) AS n, count(DISTINCT r.slot) AS slots FROM backup.jobs j JOIN backup.schedule_runs r ON r.job_id = j.id WHERE j.origin = 'schedule:every-minute'")
            let row = try #require(jobs.first)
            let (n, slots): (Int, Int) = (try row.decode("n"), try row.decode("slots"))
            #expect(n == slots, "one job per slot")
            let all = try connection.query("SELECT count(*) AS n FROM backup.jobs WHERE origin = 'schedule:every-minute'")
            #expect(try all.first?.decode("n", as: Int.self) == n, "no job without its slot")
        }
    }
}

func getJob(_ client: BusClient, _ id: String) async throws -> Rampart_Backup_V1_Job {
    var request = Rampart_Backup_V1_GetJobRequest()
    request.jobID = id
    let response: Rampart_Backup_V1_JobResponse = try await client.call(
        BackupAPI.getJob, request, idempotent: true)
    return response.job
}

func leaseOwner(_ system: BackupSystem, _ task: String) async throws -> String? {
    let connection = try PostgresConnection(connectionString: system.system.database)
    return try connection.query("SELECT lease_owner FROM backup.tasks WHERE id = \(task)::uuid").first?
        .decodeIfPresent("lease_owner")
}

