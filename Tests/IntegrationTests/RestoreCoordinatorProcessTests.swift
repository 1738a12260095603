import Crypto
import Foundation
import Postgres
import RampartAPI
import RampartArchive
import RampartBus
import RampartJSON
import RampartProto
import RampartRPC
import RampartTesting
import Testing

/// The restore coordinator over real processes (bus, inventory, storage, workers, a simulated
/// fleet, restore-coordinator, PostgreSQL). Here the test plays the replacement devices' part in
/// the protocol, so that every ordering rule can be driven step by step; `RestoreTests` runs
/// whole restores through `device-agent cli`.
@Suite("Restore coordinator: leases, ordering, fencing, checklist (R3–R14)", .serialized)
struct RestoreCoordinatorProcessTests {
    /// A backup's file as a replacement device would hold it.
    struct Held {
        var backup: Rampart_Backup_V1_Backup
        var manifest: BackupManifest
        var manifestJSON: Data

        /// The replacement's facts, equal to the backup's device unless changed.
        func facts(serial: String = "SNREPLACE01") -> Rampart_Restore_V1_DeviceFacts {
            var facts = Rampart_Restore_V1_DeviceFacts()
            facts.serial = serial
            facts.model = manifest.model
            facts.platform = manifest.platform
            facts.hypervisor = manifest.hypervisor
            facts.networkModules = UInt32(manifest.networkModules)
            facts.interfaces = Dictionary(manifest.interfaces.map { ($0.type, UInt32($0.count)) }, uniquingKeysWith: +)
            facts.software.version = manifest.software.version
            facts.software.patch = UInt32(manifest.software.patch)
            return facts
        }
    }

    /// Backs up `target`, downloads its files, then stops the fleet (every original device disconnects, R12)
    /// and starts a restore coordinator.
    static func prepare(_ system: BackupSystem, _ target: String, leaseSeconds: Int = 30) async throws -> [String: Held] {
        let (job, code) = try await system.backUp(target)
        #expect(code == 0 || code == 7, "\(job)")
        var held: [String: Held] = [:]
        for backup in try await system.backups(job: job.id) where backup.members.isEmpty {
            let contents = try BackupArchive.read(try await system.download(backup))
            held[backup.ownerName] = Held(backup: backup, manifest: contents.manifest, manifestJSON: contents.manifestJSON)
        }
        #expect(await system.fleet?.stop() == true, "the fleet stops gracefully, reporting its devices disconnected")
        try system.system.start("restore-coordinator", ["--lease-seconds", "\(leaseSeconds)"])
        try await system.system.waitUntilServing(RestoreAPI.serviceName)
        return held
    }

    static func prepareCluster(_ system: BackupSystem, _ name: String) async throws -> [String: Held] {
        let (job, code) = try await system.backUp("cluster:\(name)")
        #expect(code == 0, "\(job)")
        let bundle = try #require(try await system.backups(job: job.id).first)
        var held: [String: Held] = [:]
        for member in try ClusterBundle.members(try await system.download(bundle)) {
            let contents = try BackupArchive.read(member.data)
            var backup = bundle
            backup.fileName = member.fileName
            backup.sha256 = SHA256.hash(data: member.data).map { String(format: "%02x", $0) }.joined()
            held[contents.manifest.deviceName] = Held(
                backup: backup, manifest: contents.manifest, manifestJSON: contents.manifestJSON)
        }
        #expect(await system.fleet?.stop() == true)
        try system.system.start("restore-coordinator", ["--lease-seconds", "30"])
        try await system.system.waitUntilServing(RestoreAPI.serviceName)
        return held
    }

    /// The request a replacement holding `held` sends (RequestLease and CheckRestore take the same one).
    func leaseRequest(_ held: Held, facts: Rampart_Restore_V1_DeviceFacts?) -> Rampart_Restore_V1_RequestLeaseRequest {
        var request = Rampart_Restore_V1_RequestLeaseRequest()
        request.manifestJson = held.manifestJSON
        request.archiveSha256 = held.backup.sha256
        request.archiveFileName = held.backup.fileName
        request.facts = facts ?? held.facts()
        request.cliUser = "admin"
        return request
    }

    func request(_ client: BusClient, _ held: Held, facts: Rampart_Restore_V1_DeviceFacts? = nil) async throws
        -> Rampart_Restore_V1_Lease
    {
        try await client.call(
            RestoreAPI.requestLease, leaseRequest(held, facts: facts), timeout: .seconds(10)
        ).lease
    }

    /// Expects a refusal whose message holds every one of `parts`.
    func expectRefused(
        _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            Issue.record("expected a refusal naming \(parts); it was granted", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.code == .failedPrecondition, "\(error)", sourceLocation: sourceLocation)
            for part in parts {
                #expect(error.message.contains(part), "\(error.message) should name \(part)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    func step(_ client: BusClient, _ lease: Rampart_Restore_V1_Lease, _ step: String, token: UInt64? = nil, certificates: [String] = [])
        async throws
    {
        var request = Rampart_Restore_V1_ReportStepRequest()
        request.leaseID = lease.id
        request.fencingToken = token ?? lease.fencingToken
        request.step = step
        request.removedVpnCertificates = certificates
        let _: Rampart_Restore_V1_LeaseResponse = try await client.call(
            RestoreAPI.reportStep, request, timeout: .seconds(5))
    }

    /// The device "reboots" and reconnects as the restored device, then reports that it rejoined.
    func rejoin(_ client: BusClient, _ lease: Rampart_Restore_V1_Lease) async throws {
        var presence = Rampart_Inventory_V1_ReportPresenceRequest()
        presence.device = lease.deviceID
        presence.connected = true
        let _: Rampart_Inventory_V1_DeviceResponse = try await client.call(
            InventoryAPI.reportPresence, presence)
        var request = Rampart_Restore_V1_ReportRejoinedRequest()
        request.leaseID = lease.id
        request.fencingToken = lease.fencingToken
        let response: Rampart_Restore_V1_LeaseResponse = try await client.call(
            RestoreAPI.reportRejoined, request, timeout: .seconds(10))
        #expect(response.lease.state == .rejoined)
    }

    /// `device-agent power --dir FLEET NAME STATE` for the fleet of `system`.
    static func power(_ system: BackupSystem, _ name: String, _ state: String) async throws {
        let result = try await ChildProcess.run(
            Binaries.path("device-agent"), ["power", "--dir", system.system.logDirectory + "/fleet", name, state])
        #expect(result.exitCode == 0, "\(result)")
    }

    /// Waits until `rampart devices show NAME` says `connected` (a liveness bound, not a speed check).
    static func waitForPresence(_ system: BackupSystem, _ name: String, connected: Bool) async throws {
        try await eventually("\(name) shows \(connected ? "connected" : "disconnected")", timeout: .seconds(60)) {
            let shown = try await system.system.rampart("devices", "show", name, "--output", "json")
            let device = try? OperatorJSON.decode(Rampart_Inventory_V1_Device.self, from: shown.stdout)
            return (device?.connected == connected ? true : nil, "\(shown)")
        }
    }

    @Test("R12: one device of a running fleet dies without a word: it shows disconnected by itself and its restore is granted")
    func deadDeviceSeenDead() async throws {
        var spec = FleetSpec()
        spec.device("rma-1")
        spec.device("rma-2")
        spec.device("rma-3")
        try await withBackupSystem(spec) { system in
            let (job, code) = try await system.backUp("rma-2")
            #expect(code == 0, "\(job)")
            let backup = try #require(try await system.backups(job: job.id).first)
            let contents = try BackupArchive.read(try await system.download(backup))
            let held = Held(backup: backup, manifest: contents.manifest, manifestJSON: contents.manifestJSON)
            try system.system.start("restore-coordinator", ["--lease-seconds", "30"])
            try await system.system.waitUntilServing(RestoreAPI.serviceName)
            let client = system.system.client()
            defer { client.close() }
            await expectRefused(["still connected", "R12"]) { _ = try await request(client, held) }

            // Powered off: no goodbye, no presence report; only its heartbeats stop.
            try await Self.power(system, "rma-2", "off")
            try await Self.waitForPresence(system, "rma-2", connected: false)
            for other in ["rma-1", "rma-3"] {
                let shown = try await system.system.rampart("devices", "show", other, "--output", "json")
                #expect(try OperatorJSON.decode(Rampart_Inventory_V1_Device.self, from: shown.stdout).connected, "\(other) is untouched: \(shown)")
            }
            let events = try await system.system.rampart(
                "events", "tail", "--since", "0", "--topic", "inventory.device.disconnected", "--count", "1", "--follow", "--timeout", "30",
                "--output", "json")
            #expect(events.exitCode == 0 && events.stdout.contains("rma-2"), "\(events)")

            // The RMA goes on without `rampart devices presence`.
            let lease = try await request(client, held)
            #expect(lease.state == .active, "\(lease)")
        }
    }

    @Test("R12: a frozen device shows disconnected; unfrozen, connected again; switched off and on, connected again")
    func frozenDeviceComesBack() async throws {
        var spec = FleetSpec()
        spec.device("hang-1")
        spec.device("hang-2")
        try await withBackupSystem(spec) { system in
            try await Self.power(system, "hang-1", "frozen")
            try await Self.waitForPresence(system, "hang-1", connected: false)
            try await Self.power(system, "hang-1", "on")
            try await Self.waitForPresence(system, "hang-1", connected: true)
            // The same fault again, then the other kind: each seen, each recovered.
            try await Self.power(system, "hang-1", "frozen")
            try await Self.waitForPresence(system, "hang-1", connected: false)
            try await Self.power(system, "hang-1", "on")
            try await Self.waitForPresence(system, "hang-1", connected: true)
            try await Self.power(system, "hang-1", "off")
            try await Self.waitForPresence(system, "hang-1", connected: false)
            try await Self.power(system, "hang-1", "on")
            try await Self.waitForPresence(system, "hang-1", connected: true)
            // Back on, it serves backups again.
            let (job, code) = try await system.backUp("hang-1")
            #expect(code == 0, "\(job)")
            let shown = try await system.system.rampart("devices", "show", "hang-2", "--output", "json")
            #expect(try OperatorJSON.decode(Rampart_Inventory_V1_Device.self, from: shown.stdout).connected, "\(shown)")
        }
    }

    @Test("R7: with both HA peers replaced, the second peer is refused while the first restores and reboots, granted after it rejoined")
    func haPeers() async throws {
        var spec = FleetSpec()
        spec.pair("hr")
        try await withBackupSystem(spec, followLiveness: false) { system in
            let held = try await Self.prepare(system, "hr")
            let client = system.system.client()
            defer { client.close() }
            let primary = try #require(held["hr-a"]), secondary = try #require(held["hr-b"])
            let first = try await request(client, primary)
            #expect(first.state == .active && first.role == .haPrimary && first.fencingToken > 0)
            await expectRefused(["HA peer hr-a", "R7"]) { _ = try await request(client, secondary) }
            try await step(client, first, RestoreAPI.Step.applying)
            try await step(client, first, RestoreAPI.Step.rebooting)
            await expectRefused(["HA peer hr-a", "rebooting"]) { _ = try await request(client, secondary) }
            try await rejoin(client, first)
            let second = try await request(client, secondary)
            #expect(second.state == .active && second.fencingToken > first.fencingToken)

            // R9: the restored device shows as out of date, with the replacement's serial.
            let device: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.getDevice,
                Rampart_Inventory_V1_GetDeviceRequest.with { $0.device = "hr-a" })
            #expect(device.device.outOfDate && device.device.serial == "SNREPLACE01")

            let history = try await system.system.rampart("restore", "history", "--output", "json")
            let leases = try OperatorJSON.decode(Rampart_Restore_V1_ListLeasesResponse.self, from: history.stdout).leases
            #expect(leases.map(\.deviceName) == ["hr-b", "hr-a"])
            #expect(leases.map(\.state) == [.active, .rejoined])
        }
    }

    @Test("R8: in a 3-node cluster with control and one data node replaced, the data node waits for the control node")
    func clusterOrder() async throws {
        var spec = FleetSpec()
        spec.cluster("cr")
        try await withBackupSystem(spec, followLiveness: false) { system in
            let held = try await Self.prepareCluster(system, "cr")
            let client = system.system.client()
            defer { client.close() }
            let control = try #require(held["cr-n1"]), data = try #require(held["cr-n2"])
            await expectRefused(["control node cr-n1", "restore the control node first", "R8"]) {
                _ = try await request(client, data)
            }
            let lease = try await request(client, control)
            #expect(lease.role == .clusterControl)
            await expectRefused(["R8"]) { _ = try await request(client, data) }
            try await step(client, lease, RestoreAPI.Step.rebooting)
            try await rejoin(client, lease)
            let dataLease = try await request(client, data)
            #expect(dataLease.role == .clusterData)
            // One node at a time: the third node waits for the second (its control node is back).
            let third = try #require(held["cr-n3"])
            await expectRefused(["node cr-n2", "one node at a time"]) { _ = try await request(client, third) }
        }
    }

    @Test("R3, R4, R5, R6, R7, R12: each mismatch is refused, naming what differs; nothing is granted")
    func refusals() async throws {
        var spec = FleetSpec()
        spec.device("fw-r")
        spec.pair("hx")
        try await withBackupSystem(spec, followLiveness: false) { system in
            let held = try await Self.prepare(system, "all")
            let client = system.system.client()
            defer { client.close() }
            let standalone = try #require(held["fw-r"])
            var facts = standalone.facts()
            facts.model = "FPR-1010"
            await expectRefused(["model", "FPR-1010", "FPR-3120", "R3"]) { _ = try await request(client, standalone, facts: facts) }
            facts = standalone.facts()
            facts.networkModules += 1
            await expectRefused(["network modules", "R3"]) { _ = try await request(client, standalone, facts: facts) }
            facts = standalone.facts()
            facts.interfaces["1GbE-RJ45"] = 4
            await expectRefused(["interfaces: the replacement has 4 1GbE-RJ45", "had 8", "R3"]) {
                _ = try await request(client, standalone, facts: facts)
            }
            facts = standalone.facts()
            facts.software.version = "7.4.2"
            await expectRefused(["software", "7.4.2", "R4"]) { _ = try await request(client, standalone, facts: facts) }
            facts = standalone.facts()
            facts.software.patch = 3
            await expectRefused(["patch: the replacement runs", "patch 3", "patch 2", "R4"]) { _ = try await request(client, standalone, facts: facts) }

            var otherManager = standalone
            otherManager.manifest.managerId = "another-fmc"
            otherManager.manifestJSON = try otherManager.manifest.encoded()
            await expectRefused(["another-fmc", "R6"]) { _ = try await request(client, otherManager) }

            var unknown = standalone
            unknown.manifest.deviceId = UUID().uuidString.lowercased()
            unknown.manifestJSON = try unknown.manifest.encoded()
            await expectRefused(["is not registered", "R5", "R14"]) { _ = try await request(client, unknown) }

            // R7: the secondary's file offered for the primary's device.
            var wrongRole = try #require(held["hx-b"])
            wrongRole.manifest.deviceId = try #require(held["hx-a"]).manifest.deviceId
            wrongRole.manifestJSON = try wrongRole.manifest.encoded()
            await expectRefused(["role", "ha-secondary", "ha-primary", "R7"]) { _ = try await request(client, wrongRole) }

            // R12: the original still connected.
            var presence = Rampart_Inventory_V1_ReportPresenceRequest()
            presence.device = standalone.manifest.deviceId
            presence.connected = true
            let _: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.reportPresence, presence)
            await expectRefused(["still connected", "R12"]) { _ = try await request(client, standalone) }

            // A cluster bundle is pointed to `rampart backups extract`.
            var bundle = standalone
            bundle.backup.fileName = "c.20261127T000000Z.tar.gz"
            await expectRefused(["cluster bundle", "rampart backups extract"]) { _ = try await request(client, bundle) }

            let status = try await system.system.rampart("restore", "status", "--output", "json")
            #expect(try OperatorJSON.decode(Rampart_Restore_V1_ListLeasesResponse.self, from: status.stdout).leases.isEmpty, "nothing granted")
        }
    }

    @Test("R7: a silent device's lease expires and the next restore proceeds; its late reports are refused (fencing)")
    func expiryAndFencing() async throws {
        var spec = FleetSpec()
        spec.pair("hf")
        try await withBackupSystem(spec, followLiveness: false) { system in
            let held = try await Self.prepare(system, "hf", leaseSeconds: 2)
            let client = system.system.client()
            defer { client.close() }
            let first = try await request(client, try #require(held["hf-a"]))
            try await step(client, first, RestoreAPI.Step.applying)
            // The device goes silent (killed mid-restore): no report for longer than the lease, until the
            // coordinator has ended it.
            _ = try await eventually("the silent device's lease expires", timeout: .seconds(30)) { () -> (Bool?, String) in
                let shown = try await system.system.rampart("restore", "show", first.id, "--output", "json")
                let lease = try OperatorJSON.decode(Rampart_Restore_V1_LeaseResponse.self, from: shown.stdout).lease
                return (lease.state == .expired ? true : nil, "\(lease)")
            }
            let second = try await request(client, try #require(held["hf-b"]))
            #expect(second.fencingToken > first.fencingToken)
            // The first device wakes up: its reports are refused, whether with its own lease or its old token.
            await expectRefused(["has ended", "expired"]) { try await step(client, first, RestoreAPI.Step.applied) }
            await expectRefused(["stale fencing token \(first.fencingToken)"]) {
                try await step(client, second, RestoreAPI.Step.applied, token: first.fencingToken)
            }
            let shown = try await system.system.rampart("restore", "show", first.id, "--output", "json")
            let lease = try OperatorJSON.decode(Rampart_Restore_V1_LeaseResponse.self, from: shown.stdout).lease
            #expect(lease.state == .expired && lease.endReason.contains("went silent"))
        }
    }

    @Test("R8: 200 simultaneous lease requests for one cluster grant exactly one")
    func simultaneous() async throws {
        var spec = FleetSpec()
        spec.cluster("cs")
        try await withBackupSystem(spec, followLiveness: false) { system in
            let held = try await Self.prepareCluster(system, "cs")
            let control = try #require(held["cs-n1"])
            let client = system.system.client()
            defer { client.close() }
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        (try? await request(client, control, facts: control.facts(serial: "SN\(index)"))) != nil
                    }
                }
                var granted = 0
                for await outcome in group where outcome { granted += 1 }
                return granted
            }
            #expect(outcomes == 1)
            let status = try await system.system.rampart("restore", "status", "--output", "json")
            #expect(try OperatorJSON.decode(Rampart_Restore_V1_ListLeasesResponse.self, from: status.stdout).leases.count == 1)
        }
    }

    @Test("R13: after a rejoin the checklist lists the removed VPN certificates; deploy clears out of date, then needs --force; resume-sync ticks its item")
    func checklist() async throws {
        var spec = FleetSpec()
        spec.pair("hc")
        try await withBackupSystem(spec, followLiveness: false) { system in
            let held = try await Self.prepare(system, "hc")
            let client = system.system.client()
            defer { client.close() }
            let lease = try await request(client, try #require(held["hc-a"]))
            try await step(client, lease, RestoreAPI.Step.applied, certificates: ["branch-west", "branch-east", "added-later"])
            try await rejoin(client, lease)

            let shown = try await system.system.rampart("restore", "checklist", "hc-a", "--output", "json")
            #expect(shown.exitCode == 0, "\(shown)")
            let checklist = try OperatorJSON.decode(Rampart_Restore_V1_ChecklistResponse.self, from: shown.stdout).checklist
            #expect(checklist.items.map(\.key) == [
                RestoreAPI.Item.reenrollVPNCertificates, RestoreAPI.Item.resumeHaSync, RestoreAPI.Item.resolveLicensing,
                RestoreAPI.Item.reconfigure, RestoreAPI.Item.deploy, RestoreAPI.Item.connectDataInterfaces,
            ])
            #expect(checklist.items.first?.details == ["added-later", "branch-east", "branch-west"])
            #expect(checklist.items.allSatisfy { !$0.done })

            let deployed = try await system.system.rampart("deploy", "hc-a")
            #expect(deployed.exitCode == 0, "\(deployed)")
            let again = try await system.system.rampart("deploy", "hc-a")
            #expect(again.exitCode == 4 && again.stderr.contains("--force"), "\(again)")
            let forced = try await system.system.rampart("deploy", "hc-a", "--force", "--output", "json")
            #expect(forced.exitCode == 0, "\(forced)")
            #expect(try OperatorJSON.decode(Rampart_Restore_V1_DeployResponse.self, from: forced.stdout).forced, "\(forced)")

            // R13: the pair says its synchronisation waits to be resumed, until resume-sync.
            func syncState() async throws -> Rampart_Inventory_V1_SyncState {
                let shown = try await system.system.rampart("ha-pairs", "show", "hc", "--output", "json")
                return try OperatorJSON.decode(Rampart_Inventory_V1_HaPairResponse.self, from: shown.stdout).pair.syncState
            }
            #expect(try await syncState() == .resumeNeeded)
            let table = try await system.system.rampart("ha-pairs", "show", "hc")
            #expect(table.stdout.contains("resume-needed"), "\(table)")
            let resumed = try await system.system.rampart("ha", "resume-sync", "hc")
            #expect(resumed.exitCode == 0, "\(resumed)")
            #expect(try await syncState() == .active)
            let licensing = try await system.system.rampart("restore", "complete", "hc-a", "resolve-licensing")
            #expect(licensing.exitCode == 0, "\(licensing)")
            let bogus = try await system.system.rampart("restore", "complete", "hc-a", "make-coffee")
            #expect(bogus.exitCode == 6, "\(bogus)")

            let after = try OperatorJSON.decode(
                Rampart_Restore_V1_ChecklistResponse.self, from: try await system.system.rampart("restore", "checklist", "hc-a", "--output", "json").stdout
            ).checklist
            let done = Set(after.items.filter(\.done).map(\.key))
            #expect(done == [RestoreAPI.Item.deploy, RestoreAPI.Item.resumeHaSync, RestoreAPI.Item.resolveLicensing])
            let device: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.getDevice,
                Rampart_Inventory_V1_GetDeviceRequest.with { $0.device = "hc-a" })
            #expect(!device.device.outOfDate)
        }
    }

    @Test("an operator's forced release needs a reason, is recorded with who did it, and lets the next restore start")
    func forcedRelease() async throws {
        var spec = FleetSpec()
        spec.pair("hl")
        try await withBackupSystem(spec, followLiveness: false) { system in
            let held = try await Self.prepare(system, "hl")
            let client = system.system.client()
            defer { client.close() }
            let lease = try await request(client, try #require(held["hl-a"]))
            let noReason = try await system.system.rampart("restore", "release", lease.id, "--reason", " ")
            #expect(noReason.exitCode == 6, "\(noReason)")
            let released = try await system.system.rampart(
                as: "operator", ["restore", "release", lease.id, "--reason", "replacement was DOA", "--output", "json"])
            #expect(released.exitCode == 0, "\(released)")
            let ended = try OperatorJSON.decode(Rampart_Restore_V1_LeaseResponse.self, from: released.stdout).lease
            #expect(ended.state == .released && ended.endReason == "replacement was DOA")
            #expect(ended.releasedBy == "operator", "the name of the key that released it")
            // Audited with the key, the lease and the reason (P9).
            let audit = try await system.system.rampart("audit", "--method", RestoreAPI.releaseLease.name, "--output", "json")
            let entries = try OperatorJSON.decode(Rampart_Audit_V1_ListAuditResponse.self, from: audit.stdout).entries
            #expect(entries.map(\.outcome) == [.invalidArgument, .ok], "the release without a reason too: \(entries)")
            let entry = try #require(entries.last, "\(audit)")
            #expect(entry.callerName == "operator" && entry.callerRole == "operator" && entry.outcome == .ok, "\(entry)")
            #expect(entry.details["lease"] == lease.id && entry.details["reason"] == "replacement was DOA", "\(entry)")
            _ = try await request(client, try #require(held["hl-b"]))
            let events = try await system.system.rampart(
                "events", "tail", "--since", "0", "--topic", "restore.lease.released", "--count", "1", "--follow", "--timeout", "30",
                "--output", "json")
            #expect(events.stdout.contains("replacement was DOA"), "\(events)")
        }
    }

    @Test("R9, R13: a lease released by force after the device's commit point (rebooting recorded): its rejoin is still recorded; released before it, nothing is")
    func releaseAroundTheCommitPoint() async throws {
        var spec = FleetSpec()
        spec.device("rf-after")
        spec.device("rf-before")
        try await withBackupSystem(spec, followLiveness: false) { system in
            let held = try await Self.prepare(system, "all")
            let client = system.system.client()
            defer { client.close() }

            // After the commit point: the device wrote its configuration and reboots when the lease is released.
            let after = try #require(held["rf-after"])
            let lease = try await request(client, after)
            try await step(client, lease, RestoreAPI.Step.applied, certificates: ["vpn-a"])
            try await step(client, lease, RestoreAPI.Step.rebooting)
            let released = try await system.system.rampart("restore", "release", lease.id, "--reason", "took too long")
            #expect(released.exitCode == 0, "\(released)")
            try await rejoin(client, lease)  // accepted: the rejoin is recorded whatever happened to the lease
            let device = try await RestoreTests.device(client, "rf-after")
            #expect(device.serial == "SNREPLACE01" && device.outOfDate, "R9: the replacement's serial, out of date: \(device)")
            let history = try OperatorJSON.decode(
                Rampart_Restore_V1_ListLeasesResponse.self, from: try await system.system.rampart("restore", "history", "--device", "rf-after", "--output", "json").stdout
            ).leases
            #expect(history.first?.state == .rejoined && history.first?.endReason.contains("released") == true, "\(history)")
            let checklist = try await system.system.rampart("restore", "checklist", "rf-after", "--output", "json")
            #expect(checklist.exitCode == 0 && checklist.stdout.contains("vpn-a"), "R13: its checklist: \(checklist)")

            // Before the commit point: released while applying; its next step and its rejoin are refused,
            // and inventory keeps the original appliance's record.
            let before = try #require(held["rf-before"])
            let original = try await RestoreTests.device(client, "rf-before")
            let early = try await request(client, before, facts: before.facts(serial: "SNREPLACE02"))
            try await step(client, early, RestoreAPI.Step.applying)
            #expect(try await system.system.rampart("restore", "release", early.id, "--reason", "wrong box").exitCode == 0)
            await expectRefused(["has ended", "released"]) { try await step(client, early, RestoreAPI.Step.rebooting) }
            await expectRefused(["has ended", "released"]) {
                var request = Rampart_Restore_V1_ReportRejoinedRequest()
                request.leaseID = early.id
                request.fencingToken = early.fencingToken
                let _: Rampart_Restore_V1_LeaseResponse = try await client.call(
                    RestoreAPI.reportRejoined, request, timeout: .seconds(10))
            }
            let unchanged = try await RestoreTests.device(client, "rf-before")
            #expect(unchanged.serial == original.serial && !unchanged.outOfDate, "\(unchanged)")
        }
    }

    /// What the coordinator has recorded: leases, requests, steps, its events (outbox and journal), audit
    /// entries of CheckRestore.
    static func recorded(_ system: BackupSystem) throws -> [Int] {
        let connection = try PostgresConnection(connectionString: system.system.database)
        let row = try #require(
            try connection.query(
                """
                SELECT (SELECT count(*) FROM restore.leases) AS leases, (SELECT count(*) FROM restore.requests) AS requests,
                    (SELECT count(*) FROM restore.lease_steps) AS steps,
                    (SELECT count(*) FROM events.outbox WHERE source = 'restore-coordinator')
                        + (SELECT count(*) FROM events.journal WHERE source = 'restore-coordinator') AS events,
                    (SELECT count(*) FROM audit.entries WHERE method = \(RestoreAPI.checkRestore.name)) AS audited
                """
            ).first)
        return try ["leases", "requests", "steps", "events", "audited"].map { try row.decode($0, as: Int.self) }
    }

    func check(
        _ client: BusClient, _ held: Held, facts: Rampart_Restore_V1_DeviceFacts? = nil, timeout: Duration = .seconds(10)
    ) async throws -> Rampart_Restore_V1_CheckRestoreResponse {
        try await client.call(RestoreAPI.checkRestore, leaseRequest(held, facts: facts), timeout: timeout)
    }

    /// Expects RequestLease refused with exactly the reasons of the checks that failed in `checked`.
    func expectSameRefusal(
        _ client: BusClient, _ held: Held, facts: Rampart_Restore_V1_DeviceFacts? = nil,
        as checked: Rampart_Restore_V1_CheckRestoreResponse, sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        let reasons = checked.checks.filter { !$0.passed }.flatMap(\.reasons)
        #expect(!checked.passed && !reasons.isEmpty, "\(checked)", sourceLocation: sourceLocation)
        do {
            _ = try await request(client, held, facts: facts)
            Issue.record("granted, but CheckRestore said: \(reasons)", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            let expected =
                checked.deviceName.isEmpty
                ? reasons.joined(separator: "; ") : "restore of \(checked.deviceName) refused: " + reasons.joined(separator: "; ")
            #expect(error.code == .failedPrecondition && error.message == expected, "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test(
        "R3, R4, R5, R6, R7, R12, R14: CheckRestore answers RequestLease's checks one by one and records nothing; RequestLease refuses with exactly the failed checks' reasons; a newer backup is a warning on both, given up at once with no backup service"
    )
    func checkRestore() async throws {
        var spec = FleetSpec()
        spec.device("ck-1")
        spec.pair("hq")
        try await withBackupSystem(spec, followLiveness: false) { system in
            // Two backups of ck-1: the first one's file is then older than the newest.
            let (firstJob, firstCode) = try await system.backUp("ck-1")
            #expect(firstCode == 0, "\(firstJob)")
            let first = try #require(try await system.backups(job: firstJob.id).first)
            let firstContents = try BackupArchive.read(try await system.download(first))
            let older = Held(backup: first, manifest: firstContents.manifest, manifestJSON: firstContents.manifestJSON)
            try await system.changeConfig("ck-1")  // so that the next backup stores a newer configuration (P17)
            let held = try await Self.prepare(system, "all")
            let client = system.system.client()
            defer { client.close() }
            let newest = try #require(held["ck-1"])
            #expect(newest.backup.createdUnixMs > older.backup.createdUnixMs)
            let before = try Self.recorded(system)

            let good = try await check(client, newest)
            #expect(good.passed && good.deviceName == "ck-1", "\(good)")
            #expect(
                good.checks.map(\.name)
                    == ["own appliance", "manager", "hardware", "software", "role", "original disconnected", "order"])
            #expect(!good.hasNewerBackup && good.backupsNotChecked.isEmpty, "the newest backup: nothing newer")
            let old = try await check(client, older)
            #expect(old.passed, "\(old)")
            #expect(old.newerBackup.fileName == newest.backup.fileName && old.newerBackup.backupID == newest.backup.id)
            #expect(old.newerBackup.createdUnixMs == newest.backup.createdUnixMs)

            // Each bad case: the failed check names it.
            var model = newest.facts()
            model.model = "FPR-1010"
            var patch = newest.facts()
            patch.software.patch = 3
            var otherManager = newest
            otherManager.manifest.managerId = "another-fmc"
            otherManager.manifestJSON = try otherManager.manifest.encoded()
            var unknown = newest
            unknown.manifest.deviceId = UUID().uuidString.lowercased()
            unknown.manifestJSON = try unknown.manifest.encoded()
            var wrongRole = try #require(held["hq-b"])
            wrongRole.manifest.deviceId = try #require(held["hq-a"]).manifest.deviceId
            wrongRole.manifestJSON = try wrongRole.manifest.encoded()
            let cases: [(String, Held, Rampart_Restore_V1_DeviceFacts?, [String])] = [
                ("model", newest, model, ["hardware"]),
                ("patch", newest, patch, ["software"]),
                ("manager", otherManager, nil, ["manager"]),
                ("unregistered", unknown, nil, ["own appliance"]),
                ("role", wrongRole, nil, ["role"]),
            ]
            var answers: [String: Rampart_Restore_V1_CheckRestoreResponse] = [:]
            for (name, held, facts, failed) in cases {
                let answer = try await check(client, held, facts: facts)
                #expect(!answer.passed && answer.checks.filter { !$0.passed }.map(\.name) == failed, "\(name): \(answer)")
                answers[name] = answer
            }
            #expect(answers["unregistered"]?.checks.first?.reasons.first?.contains("R14") == true)
            // R12: the original connected again.
            var presence = Rampart_Inventory_V1_ReportPresenceRequest()
            presence.device = newest.manifest.deviceId
            presence.connected = true
            let _: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.reportPresence, presence)
            let connected = try await check(client, newest)
            #expect(connected.checks.filter { !$0.passed }.map(\.name) == ["original disconnected"], "\(connected)")
            #expect(try Self.recorded(system) == before, "CheckRestore recorded nothing: no lease, request, step, event or audit entry")

            // RequestLease refuses each with exactly the reasons the checks gave.
            await expectSameRefusal(client, newest, as: connected)
            presence.connected = false
            let _: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.reportPresence, presence)
            for (name, held, facts, _) in cases {
                await expectSameRefusal(client, held, facts: facts, as: try #require(answers[name]))
            }

            // A grant of the older backup says which newer one exists (a warning: the lease is granted).
            var leaseRequest = Rampart_Restore_V1_RequestLeaseRequest()
            leaseRequest.manifestJson = older.manifestJSON
            leaseRequest.archiveSha256 = older.backup.sha256
            leaseRequest.archiveFileName = older.backup.fileName
            leaseRequest.facts = older.facts()
            let granted: Rampart_Restore_V1_LeaseResponse = try await client.call(
                RestoreAPI.requestLease, leaseRequest,
                timeout: .seconds(10))
            #expect(granted.lease.state == .active && granted.newerBackup.fileName == newest.backup.fileName)
            // Now ck-1 is being restored: the check's order says so, and so does RequestLease.
            let busy = try await check(client, newest)
            #expect(busy.checks.filter { !$0.passed }.map(\.name) == ["order"], "\(busy)")
            #expect(busy.checks.last?.reasons.first?.contains("ck-1 is already being restored") == true)

            // R7: the first peer holds the pair; the second's check names it, recording nothing.
            _ = try await request(client, try #require(held["hq-a"]))
            let recorded = try Self.recorded(system)
            let peer = try await check(client, try #require(held["hq-b"]))
            #expect(peer.checks.last?.name == "order" && peer.checks.last?.rules == "R7")
            #expect(peer.checks.last?.reasons.first?.contains("its HA peer hq-a is being restored") == true, "\(peer)")
            #expect(try Self.recorded(system) == recorded)
            await expectSameRefusal(client, try #require(held["hq-b"]), as: peer)

            // With no backup instance on the bus the warning is given up at once, not after the
            // coordinator's 5 s call deadline: a check with a 3 s deadline is answered, saying why.
            for worker in system.workers { _ = await worker.stop() }
            try await system.system.waitUntilServing(BackupAPI.serviceName, instances: 0)
            let unwarned = try await check(client, older, timeout: .seconds(3))
            #expect(!unwarned.hasNewerBackup && unwarned.deviceName == "ck-1", "\(unwarned)")
            #expect(unwarned.backupsNotChecked.contains("no instance of service"), "\(unwarned.backupsNotChecked)")
        }
    }
}
