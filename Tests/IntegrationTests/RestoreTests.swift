import Foundation
import RampartAPI
import RampartArchive
import RampartBus
import RampartJSON
import RampartProto
import RampartTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Whole restores over real processes: replacement devices run `device-agent cli`, fetch their
/// backup (local folder, or a signed download URL served by storage), ask the real
/// restore-coordinator for a lease, apply, reboot and rejoin (R1–R14).
@Suite("Restore end to end: replacement devices through device-agent cli", .serialized)
struct RestoreTests {
    /// `device-agent init` of a replacement for a FleetSpec HA peer or cluster node (same hardware and
    /// software, another serial).
    static func replacement(
        _ system: BackupSystem, name: String, serial: String, model: String = "FPR-4215", platform: String = "physical"
    ) async throws -> String {
        let dir = system.system.logDirectory + "/\(name)"
        let result = try await ChildProcess.run(
            Binaries.path("device-agent"),
            [
                "init", "--dir", dir, "--name", name, "--serial", serial, "--model", model, "--platform", platform,
                "--software", "7.4.1", "--patch", "2", "--network-modules", "1", "--interface", "1GbE-RJ45=8",
                "--management-ip", "198.51.100.\(Int.random(in: 2...250))",
            ], environment: system.system.environment)
        #expect(result.exitCode == 0, "\(result)")
        return dir
    }

    /// The replacement's CLI, holding the bus key of the device it replaces (as an RMA'd appliance is
    /// given the original's identity: docs/security.md).
    static func cli(_ system: BackupSystem, _ dir: String, replacing device: String, rebootDelayMs: Int = 1500) throws
        -> PipedProcess
    {
        try PipedProcess(
            Binaries.path("device-agent"),
            ["cli", "--dir", dir, "--user", "rma-tech", "--reboot-delay-ms", "\(rebootDelayMs)", "--presence-interval-ms", "500"],
            environment: try system.system.environment(asDevice: device))
    }

    /// Stops the fleet (the faulty devices disconnect, R12) and starts a restore coordinator.
    static func replaceFleet(_ system: BackupSystem, leaseSeconds: Int = 20) async throws {
        #expect(await system.fleet?.stop() == true, "R12: the faulty devices are disconnected first")
        try system.system.start("restore-coordinator", ["--lease-seconds", "\(leaseSeconds)"])
        try await system.system.waitUntilServing(RestoreAPI.serviceName)
    }

    static func device(_ client: BusClient, _ name: String) async throws -> Rampart_Inventory_V1_Device {
        let response: Rampart_Inventory_V1_DeviceResponse = try await client.call(
            InventoryAPI.getDevice,
            Rampart_Inventory_V1_GetDeviceRequest.with { $0.device = name })
        return response.device
    }

    @Test("R7, R9, R10, R11, R13, L2: both HA peers replaced — the second is refused until the first rejoined; a signed URL restores the second")
    func haPair() async throws {
        var spec = FleetSpec()
        spec.pair("hz")
        try await withBackupSystem(spec, links: true) { system in
            let (job, code) = try await system.backUp("hz")
            #expect(code == 0, "\(job)")
            let backups = try await system.backups(job: job.id)
            let primary = try #require(backups.first { $0.ownerName == "hz-a" })
            let secondary = try #require(backups.first { $0.ownerName == "hz-b" })
            let primaryArchive = try await system.download(primary)
            let original = try BackupArchive.read(primaryArchive)
            #expect(await system.fleet?.stop() == true, "R12: the faulty devices are disconnected first")
            try system.system.start("restore-coordinator", ["--lease-seconds", "20"])
            try await system.system.waitUntilServing(RestoreAPI.serviceName)

            // Replacement A restores from its local backup folder; B from a signed URL.
            let dirA = try await Self.replacement(system, name: "rma-a", serial: "RMA0001")
            let dirB = try await Self.replacement(system, name: "rma-b", serial: "RMA0002")
            let vpnAddedLater = dirA + "/config/vpn/certs/added-after-backup.crt"
            try Data("-----BEGIN CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: vpnAddedLater))
            try primaryArchive.write(to: URL(fileURLWithPath: dirA + "/backups/" + primary.fileName))
            let keyBefore = try Data(contentsOf: URL(fileURLWithPath: dirA + "/device.key"))
            let export = try await system.system.rampart(
                "links", "export", secondary.id, "--valid", "30m", "--output", "json")
            #expect(export.exitCode == 0, "\(export)")
            let url = try #require(try OperatorJSON.decode(Rampart_Links_V1_ExportBackupLinksResponse.self, from: export.stdout).links.first?.url)

            // A's lease must still be held when B asks, however slowly B's fetch runs on a loaded
            // machine: A waits 15 s in its reboot step (its lease renewed meanwhile).
            let cliA = try Self.cli(system, dirA, replacing: "hz-a", rebootDelayMs: 15_000)
            try await cliA.waitForOutput("> ")
            cliA.send("restore remote-manager-backup backup \(primary.fileName)")
            try await cliA.waitForOutput("restore: lease ", timeout: .seconds(30))

            let cliB = try Self.cli(system, dirB, replacing: "hz-b")
            try await cliB.waitForOutput("> ")
            cliB.send("restore remote-manager-backup url \(url)")
            try await cliB.waitForOutput("HA peer hz-a", timeout: .seconds(30))
            #expect(cliB.stdout.contains("nothing was written"), "\(cliB.stdout)")

            try await cliA.waitForOutput("restore: complete", timeout: .seconds(60))
            cliB.send("restore remote-manager-backup url \(url)")
            try await cliB.waitForOutput("restore: complete", timeout: .seconds(60))

            let client = system.system.client()
            defer { client.close() }
            let a = try await Self.device(client, "hz-a")
            let b = try await Self.device(client, "hz-b")
            #expect(a.connected && a.outOfDate && a.serial == "RMA0001", "R9: back, out of date, the replacement's serial")
            #expect(b.connected && b.outOfDate && b.serial == "RMA0002")

            // R9: all configuration and the management IP are the backup's.
            let facts = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dirA + "/facts.json")))
                as? [String: Any]
            #expect(facts?["managementIp"] as? String == original.manifest.managementIp)
            #expect(facts?["name"] as? String == "hz-a")
            #expect(facts?["serial"] as? String == "RMA0001")
            let runningConfig = try Data(contentsOf: URL(fileURLWithPath: dirA + "/config/running-config"))
            #expect(runningConfig == original.files.first { $0.path == "running-config" }?.contents)
            // R10: no VPN certificate or configuration is left, not even one added after the backup.
            #expect(!FileManager.default.fileExists(atPath: dirA + "/config/vpn"))
            // R11: a new device key, and the private keys are encrypted under it (never plain).
            let keyAfter = try Data(contentsOf: URL(fileURLWithPath: dirA + "/device.key"))
            #expect(keyAfter.count == 32 && keyAfter != keyBefore)
            let pki = try FileManager.default.contentsOfDirectory(atPath: dirA + "/config/pki")
            #expect(pki.contains { $0.hasSuffix(".key.enc") } && !pki.contains { $0.hasSuffix(".key") })

            // R13: the checklist names the certificates to re-enroll, the added-later one included.
            let shown = try await system.system.rampart("restore", "checklist", "hz-a", "--output", "json")
            let checklist = try OperatorJSON.decode(Rampart_Restore_V1_ChecklistResponse.self, from: shown.stdout).checklist
            let certificates = checklist.items.first { $0.key == RestoreAPI.Item.reenrollVPNCertificates }?.details ?? []
            #expect(certificates.contains("added-after-backup"), "\(certificates)")
            #expect(certificates.contains("branch-east"), "\(certificates)")

            let history = try OperatorJSON.decode(
                Rampart_Restore_V1_ListLeasesResponse.self, from: try await system.system.rampart("restore", "history", "--output", "json").stdout
            ).leases
            #expect(history.map(\.deviceName) == ["hz-b", "hz-a"] && history.allSatisfy { $0.state == .rejoined })

            // The restored device serves its bus service again: a backup of the pair works.
            let (after, afterCode) = try await system.backUp("hz")
            #expect(afterCode == 0, "\(after)")
            cliA.send("exit")
            cliB.send("exit")
        }
    }

    @Test("R8: cluster control and data node replaced through their CLIs — the data node is refused until the control node rejoined")
    func clusterNodes() async throws {
        var spec = FleetSpec()
        spec.cluster("cz")
        try await withBackupSystem(spec) { system in
            let (job, code) = try await system.backUp("cluster:cz")
            #expect(code == 0, "\(job)")
            let bundle = try #require(try await system.backups(job: job.id).first)
            let bundlePath = system.system.logDirectory + "/" + bundle.fileName
            try await system.download(bundle).write(to: URL(fileURLWithPath: bundlePath))
            try await Self.replaceFleet(system)
            var dirs: [String: String] = [:]
            for (index, node) in ["cz-n1", "cz-n2"].enumerated() {
                let dir = try await Self.replacement(
                    system, name: "rma-\(node)", serial: "RMAC000\(index)", model: "FPR-9300", platform: "native-instance")
                // R8: the node's file comes out of the bundle with `rampart backups extract`.
                let extracted = try await system.system.rampart(
                    "backups", "extract", bundlePath, "--node", node, "-o", dir + "/backups/\(node).tar")
                #expect(extracted.exitCode == 0, "\(extracted)")
                dirs[node] = dir
            }
            let data = try Self.cli(system, try #require(dirs["cz-n2"]), replacing: "cz-n2")
            try await data.waitForOutput("> ")
            data.send("restore remote-manager-backup backup cz-n2.tar")
            try await data.waitForOutput("restore the control node first", timeout: .seconds(30))

            let control = try Self.cli(system, try #require(dirs["cz-n1"]), replacing: "cz-n1")
            try await control.waitForOutput("> ")
            control.send("restore remote-manager-backup backup cz-n1.tar")
            try await control.waitForOutput("restore: complete", timeout: .seconds(60))
            data.send("restore remote-manager-backup backup cz-n2.tar")
            try await data.waitForOutput("restore: complete", timeout: .seconds(60))

            let leases = try OperatorJSON.decode(
                Rampart_Restore_V1_ListLeasesResponse.self, from: try await system.system.rampart("restore", "history", "--output", "json").stdout
            ).leases
            #expect(leases.map(\.deviceName) == ["cz-n2", "cz-n1"])
            #expect(leases.map(\.role) == [.clusterData, .clusterControl])
            #expect(leases.allSatisfy { $0.state == .rejoined })
            control.send("exit")
            data.send("exit")
        }
    }

    @Test("R7: an agent killed mid-restore (during its reboot) stops renewing; its lease expires and the peer's restore proceeds")
    func killedAgent() async throws {
        var spec = FleetSpec()
        spec.pair("hk")
        try await withBackupSystem(spec) { system in
            let (job, code) = try await system.backUp("hk")
            #expect(code == 0, "\(job)")
            let backups = try await system.backups(job: job.id)
            try await Self.replaceFleet(system, leaseSeconds: 3)
            var dirs: [String] = []
            for (index, peer) in ["hk-a", "hk-b"].enumerated() {
                let backup = try #require(backups.first { $0.ownerName == peer })
                let dir = try await Self.replacement(system, name: "rma-\(peer)", serial: "RMAK000\(index)")
                try await system.download(backup).write(to: URL(fileURLWithPath: dir + "/backups/\(peer).tar"))
                dirs.append(dir)
            }
            // A reboots for a long time, renewing its lease meanwhile; then it dies.
            let first = try Self.cli(system, dirs[0], replacing: "hk-a", rebootDelayMs: 120_000)
            try await first.waitForOutput("> ")
            first.send("restore remote-manager-backup backup hk-a.tar")
            try await first.waitForOutput("the device reboots in", timeout: .seconds(60))
            let second = try Self.cli(system, dirs[1], replacing: "hk-b")
            try await second.waitForOutput("> ")
            second.send("restore remote-manager-backup backup hk-b.tar")
            try await second.waitForOutput("HA peer hk-a", timeout: .seconds(30))
            kill(first.pid, SIGKILL)
            _ = try await first.waitForExit()

            // The silent lease expires (no report for 3 s); then the peer's restore goes ahead.
            var expired = false
            for _ in 0..<120 where !expired {
                try await Task.sleep(for: .milliseconds(500))
                let history = try await system.system.rampart("restore", "history", "--device", "hk-a", "--output", "json")
                expired = (try? OperatorJSON.decode(Rampart_Restore_V1_ListLeasesResponse.self, from: history.stdout))?.leases.first?.state == .expired
            }
            #expect(expired, "the dead agent's lease never expired")
            second.send("restore remote-manager-backup backup hk-b.tar")
            try await second.waitForOutput("restore: complete", timeout: .seconds(60))
            let leases = try OperatorJSON.decode(
                Rampart_Restore_V1_ListLeasesResponse.self, from: try await system.system.rampart("restore", "history", "--output", "json").stdout
            ).leases
            #expect(leases.map(\.deviceName) == ["hk-b", "hk-a"])
            #expect(leases.map(\.state) == [.rejoined, .expired])
            second.send("exit")
        }
    }

    /// Every entry below `root`: files with their contents, folders and anything else as markers.
    static func snapshot(_ root: String) -> [String: Data] {
        var entries: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            var info = stat()
            guard lstat(root + "/" + relative, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFREG: entries[relative] = FileManager.default.contents(atPath: root + "/" + relative) ?? Data()
            case S_IFDIR: entries[relative + "/"] = Data("<dir \(info.st_mode & 0o7777)>".utf8)
            default: entries[relative] = Data("<other \(info.st_mode)>".utf8)
            }
        }
        return entries
    }

    /// The leases of `device`, newest first.
    static func history(_ system: BackupSystem, _ device: String) async throws -> [Rampart_Restore_V1_Lease] {
        let shown = try await system.system.rampart("restore", "history", "--device", device, "--output", "json")
        return try OperatorJSON.decode(Rampart_Restore_V1_ListLeasesResponse.self, from: shown.stdout).leases
    }

    @Test(
        "R2, R4, R12, Archives: check through device-agent cli runs the device's and the real coordinator's checks and changes nothing; a newer backup is warned about by check and by the restore, which goes ahead"
    )
    func checkThenRestore() async throws {
        var spec = FleetSpec()
        spec.device("ck-a")
        try await withBackupSystem(spec) { system in
            let (firstJob, firstCode) = try await system.backUp("ck-a")
            #expect(firstCode == 0, "\(firstJob)")
            let older = try #require(try await system.backups(job: firstJob.id).first)
            // Changed since: the second backup stores a newer configuration (an unchanged one would share
            // the first one's file, and nothing would be newer).
            try await system.changeConfig("ck-a")
            let (secondJob, secondCode) = try await system.backUp("ck-a")
            #expect(secondCode == 0, "\(secondJob)")
            let newer = try #require(try await system.backups(job: secondJob.id).first)
            #expect(newer.createdUnixMs > older.createdUnixMs)
            let dir = try await Self.replacement(system, name: "rma-ck", serial: "RMACK0001", model: "FPR-3120")
            let olderArchive = try await system.download(older)
            try olderArchive.write(to: URL(fileURLWithPath: dir + "/backups/ck-a-older.tar"))
            try await system.download(newer).write(to: URL(fileURLWithPath: dir + "/backups/ck-a-newer.tar"))
            // A hostile copy: a member that would land outside the configuration folder.
            let members = try TarReader(data: olderArchive).members()
            try TarWriter.archive(members + [.file("../../outside/evil", Data("pwned\n".utf8))]).write(
                to: URL(fileURLWithPath: dir + "/backups/ck-a-hostile.tar"))
            let before = Self.snapshot(dir)

            // The original still runs: the coordinator's R12 check fails, nothing else.
            try system.system.start("restore-coordinator", ["--lease-seconds", "20"])
            try await system.system.waitUntilServing(RestoreAPI.serviceName)
            let cli = try Self.cli(system, dir, replacing: "ck-a")
            try await cli.waitForOutput("> ")
            cli.send("restore remote-manager-backup check backup ck-a-newer.tar")
            try await cli.waitForOutput("check: failed: 1 of ", timeout: .seconds(30))
            #expect(
                cli.stdout.contains("check: failed coordinator: original disconnected (R12): device ck-a is still connected"),
                "\(cli.stdout)")

            #expect(await system.fleet?.stop() == true, "R12: the faulty device is disconnected")
            cli.send("restore remote-manager-backup check backup ck-a-hostile.tar")
            try await cli.waitForOutput("check: failed archive: the archive ck-a-hostile.tar is refused", timeout: .seconds(30))
            try await cli.waitForOutput("(the restore coordinator was not asked)", timeout: .seconds(30))
            cli.send("restore remote-manager-backup check backup ck-a-newer.tar")
            try await cli.waitForOutput("check: passed: all ", timeout: .seconds(30))
            let warning = "warning: newer backup exists: \(newer.fileName) taken "
            #expect(!cli.stdout.contains(warning), "the newest backup: no warning\n\(cli.stdout)")
            cli.send("restore remote-manager-backup check backup ck-a-older.tar")
            try await cli.waitForOutput("check: passed: all ", count: 2, timeout: .seconds(30))
            #expect(cli.stdout.contains(warning), "\(cli.stdout)")
            for name in ["own appliance (R5, R14)", "manager (R6)", "hardware (R3)", "software (R4)", "role (R7)",
                         "original disconnected (R12)", "order (R1)"] {
                #expect(cli.stdout.contains("check: ok     coordinator: \(name): "), "\(name)\n\(cli.stdout)")
            }
            // Nothing changed: the device folder, the coordinator's records.
            #expect(Self.snapshot(dir) == before)
            #expect(try RestoreCoordinatorProcessTests.recorded(system) == [0, 0, 0, 0, 0], "no lease, request, step, event, audit")

            // The restore of the older backup warns before its lease and goes ahead.
            cli.send("restore remote-manager-backup backup ck-a-older.tar")
            try await cli.waitForOutput("restore: complete", timeout: .seconds(60))
            let restoring = cli.stdout.components(separatedBy: "backup ck-a-older.tar").last ?? ""
            let warned = try #require(restoring.range(of: warning), "\(restoring)")
            let leased = try #require(restoring.range(of: "restore: lease "), "\(restoring)")
            #expect(warned.lowerBound < leased.lowerBound)
            let client = system.system.client()
            defer { client.close() }
            let device = try await Self.device(client, "ck-a")
            #expect(device.serial == "RMACK0001" && device.outOfDate)
            kill(cli.pid, SIGTERM)
            #expect(try await cli.waitForExit() == 0, "\(cli.stderr)")
        }
    }

    @Test(
        "R9, R13: through device-agent cli, a lease released by force during the reboot (past the commit point): the device comes back and its rejoin is recorded; released before the write: nothing is written"
    )
    func releasedAroundTheCommitPoint() async throws {
        var spec = FleetSpec()
        spec.device("rl-after")
        spec.device("rl-before")
        try await withBackupSystem(spec) { system in
            let (job, code) = try await system.backUp("all")
            #expect(code == 0, "\(job)")
            let backups = try await system.backups(job: job.id)
            try await Self.replaceFleet(system)
            let client = system.system.client()
            defer { client.close() }
            func cli(_ dir: String, replacing device: String, hold: String, file: String) throws -> PipedProcess {
                try PipedProcess(
                    Binaries.path("device-agent"),
                    [
                        "cli", "--dir", dir, "--user", "rma-tech", "--reboot-delay-ms", "0", "--presence-interval-ms",
                        "500", hold, file,
                    ],
                    environment: try system.system.environment(asDevice: device))
            }

            // Past the commit point: the device reboots (held) when the operator releases its lease.
            let after = try #require(backups.first { $0.ownerName == "rl-after" })
            let dirA = try await Self.replacement(system, name: "rma-after", serial: "RMARL0001", model: "FPR-3120")
            try await system.download(after).write(to: URL(fileURLWithPath: dirA + "/backups/" + after.fileName))
            let rebootGate = system.system.logDirectory + "/reboot-gate"
            let cliA = try cli(dirA, replacing: "rl-after", hold: "--hold-reboot", file: rebootGate)
            try await cliA.waitForOutput("> ")
            cliA.send("restore remote-manager-backup backup \(after.fileName)")
            try await cliA.waitForOutput("boot: holding the reboot", timeout: .seconds(60))
            let rebooting = try #require(try await Self.history(system, "rl-after").first)
            #expect(rebooting.state == .active && rebooting.step == RestoreAPI.Step.rebooting, "\(rebooting)")
            let released = try await system.system.rampart(
                "restore", "release", rebooting.id, "--reason", "replacement slow to boot")
            #expect(released.exitCode == 0, "\(released)")
            #expect(try await Self.history(system, "rl-after").first?.state == .released)
            #expect(FileManager.default.createFile(atPath: rebootGate, contents: nil))
            try await cliA.waitForOutput("restore: complete", timeout: .seconds(60))
            let device = try await Self.device(client, "rl-after")
            #expect(device.connected && device.outOfDate && device.serial == "RMARL0001", "R9: \(device)")
            let ended = try #require(try await Self.history(system, "rl-after").first)
            #expect(ended.id == rebooting.id && ended.state == .rejoined, "\(ended)")
            #expect(
                ended.endReason == "rejoined after the lease was released past the commit point (replacement slow to boot)",
                "\(ended.endReason)")
            let checklist = try await system.system.rampart("restore", "checklist", "rl-after", "--output", "json")
            #expect(checklist.exitCode == 0, "R13: the checklist is open: \(checklist)")
            let facts = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dirA + "/facts.json")))
                as? [String: Any]
            #expect(facts?["name"] as? String == "rl-after" && facts?["serial"] as? String == "RMARL0001")
            kill(cliA.pid, SIGTERM)
            #expect(try await cliA.waitForExit() == 0, "\(cliA.stderr)")

            // Before the commit point: released while the device holds before writing; nothing is written.
            let early = try #require(backups.first { $0.ownerName == "rl-before" })
            let dirB = try await Self.replacement(system, name: "rma-before", serial: "RMARL0002", model: "FPR-3120")
            try await system.download(early).write(to: URL(fileURLWithPath: dirB + "/backups/" + early.fileName))
            let original = try await Self.device(client, "rl-before")
            let untouched = Self.snapshot(dirB)
            let writeGate = system.system.logDirectory + "/write-gate"
            let cliB = try cli(dirB, replacing: "rl-before", hold: "--hold-before-write", file: writeGate)
            try await cliB.waitForOutput("> ")
            cliB.send("restore remote-manager-backup backup \(early.fileName)")
            try await cliB.waitForOutput("restore: holding before writing", timeout: .seconds(60))
            let applying = try #require(try await Self.history(system, "rl-before").first)
            #expect(applying.state == .active && applying.step == RestoreAPI.Step.applying, "\(applying)")
            let wrongBox = try await system.system.rampart("restore", "release", applying.id, "--reason", "wrong box")
            #expect(wrongBox.exitCode == 0, "\(wrongBox)")
            #expect(FileManager.default.createFile(atPath: writeGate, contents: nil))
            try await cliB.waitForOutput("nothing was written", timeout: .seconds(30))
            #expect(cliB.stdout.contains("error: the restore lease was lost: "), "\(cliB.stdout)")
            try await cliB.waitForOutput("> ", count: 2, timeout: .seconds(30))
            #expect(Self.snapshot(dirB) == untouched, "the device folder is as it was")
            let unchanged = try await Self.device(client, "rl-before")
            #expect(unchanged.serial == original.serial && !unchanged.outOfDate, "\(unchanged)")
            let endedEarly = try #require(try await Self.history(system, "rl-before").first)
            #expect(endedEarly.state == .released && endedEarly.endReason == "wrong box", "\(endedEarly)")
            let checklistB = try await system.system.rampart("restore", "checklist", "rl-before")
            #expect(checklistB.exitCode != 0, "no checklist: nothing was restored: \(checklistB)")
            cliB.send("exit")
            #expect(try await cliB.waitForExit() == 0, "\(cliB.stderr)")
        }
    }
}
