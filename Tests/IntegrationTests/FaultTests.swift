import Foundation
import Postgres
import RampartAPI
import RampartBus
import RampartJSON
import RampartProto
import RampartRPC
import RampartTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// P10 (docs/faults.md): faults survived, each over real processes. Every wait is a poll with a generous
/// deadline (a bound against hangs, never a speed check). Serialized: each test runs a whole system.
@Suite("P10: faults survived with nothing lost", .serialized)
struct FaultTests {
    // MARK: broker

    @Test("P10: kill -9 of the broker: in-flight calls end UNAVAILABLE or DEADLINE_EXCEEDED, services and clients reconnect, idempotent calls are retried, no job lost")
    func brokerKilled() async throws {
        var spec = FleetSpec()
        spec.configSize = "4MiB"
        // 3 s per 1 MiB chunk, ~12 s per attempt: the job's own reads are still going on when the test's read
        // reaches the device, even on a loaded machine.
        spec.device("fw-busy", slowExportMs: 3000)
        spec.device("fw-later")
        try await withBackupSystem(spec) { backup in
            let system = backup.system
            let client = system.client(caller: "fault-test")
            defer { client.close() }
            var lookup = Rampart_Inventory_V1_GetDeviceRequest()
            lookup.device = "fw-busy"
            let device: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.getDevice, lookup, idempotent: true)
            let deviceService = "device/\(device.device.id)"

            let job = try await system.startJob("fw-busy")
            _ = try await eventually("the job's task runs") {
                let (current, seen) = try await system.job(job.id)
                return (current?.tasks.first?.state == .taskRunning ? () : nil, seen)
            }

            // An in-flight call: the test's own slow ReadExport, at the device when the bus dies.
            var start = Rampart_Device_V1_StartExportRequest()
            start.jobID = "fault-test"
            start.role = .standalone
            let export: Rampart_Device_V1_StartExportResponse = try await client.call(
                DeviceAPI.startExport, start, service: deviceService, timeout: .seconds(30))
            var read = Rampart_Device_V1_ReadExportRequest()
            read.exportID = export.exportID
            read.length = 1 << 20
            let payload = try read.serializedData()
            let inFlight = Task {
                await client.send(
                    service: deviceService, method: DeviceAPI.readExport.name, payload: payload,
                    deadline: Int64(Date().timeIntervalSince1970 * 1000) + 8000)
            }
            // In flight at the device when the bus dies: wait until the broker has handed it to the device, which
            // holds each ReadExport 3 s. The job's worker reads its own export there one chunk at a time, so
            // two requests in flight at the device means ours is one of them.
            // A status call that runs out of time on a loaded machine is only another probe that saw nothing.
            try await eventually("the test's ReadExport is in flight at \(deviceService)", timeout: .seconds(60), every: .milliseconds(20)) {
                do {
                    let status = try await client.call(BrokerAPI.status, Rampart_Bus_V1_BrokerStatusRequest(), timeout: .seconds(5))
                    let inFlight = status.services.first { $0.name == deviceService }?.inFlight ?? 0
                    return (inFlight >= 2 ? () : nil, "\(inFlight) requests in flight at the device")
                } catch {
                    return (nil, "broker status: \(error)")
                }
            }
            let killedAt = Date()
            system.bus.kill9()

            let reply = try await bounded("the in-flight call", .seconds(60)) { await inFlight.value }
            #expect(
                [.unavailable, .deadlineExceeded].contains(reply.header.status),
                "an in-flight call ends UNAVAILABLE or DEADLINE_EXCEEDED, not \(reply.header.status): \(reply.header.message)")

            // While the bus is down a call ends by its deadline, exit 5 (unavailable or too slow).
            let down = try await bounded("a CLI call while the bus is down", .seconds(60)) {
                try await system.rampart("devices", "list", "--timeout", "2")
            }
            #expect(down.exitCode == 5, "\(down)")

            // An idempotent call started while the bus is down is retried and answered once it is back.
            let (calling, callingContinuation) = AsyncStream.makeStream(of: Void.self)
            let idempotent = Task { () -> Result<Rampart_Inventory_V1_ListDevicesResponse, any Error> in
                let retrying = system.client(caller: "fault-test-retry")
                defer { retrying.close() }
                do {
                    // Signalled just before the call, which queues its request for the client's socket thread
                    // before it first suspends: well before a new bus (a process start away) can listen.
                    callingContinuation.yield()
                    return .success(
                        try await retrying.call(
                            InventoryAPI.listDevices,
                            Rampart_Inventory_V1_ListDevicesRequest(), timeout: .seconds(90), idempotent: true))
                } catch {
                    return .failure(error)
                }
            }
            // The bus comes back only once the call is under way.
            for await _ in calling { break }
            let restartedAt = Date()
            try system.restartBus()

            // Every service instance and every device reconnects by itself.
            try await system.waitUntilServing(InventoryAPI.serviceName, timeout: .seconds(90))
            try await system.waitUntilServing("storage", timeout: .seconds(90))
            try await system.waitUntilServing(BackupAPI.serviceName, timeout: .seconds(90))
            try await system.waitUntilServing(deviceService, timeout: .seconds(90))
            let answered = try await bounded("the retried idempotent call", .seconds(120)) { await idempotent.value }
            let devices = try answered.get()
            #expect(Set(devices.devices.map(\.name)) == ["fw-busy", "fw-later"])

            let up = try await eventually("the CLI is answered again") {
                let result = try await system.rampart("devices", "list", "--timeout", "5")
                return (result.exitCode == 0 ? result : nil, "\(result)")
            }
            #expect(up.stdout.contains("fw-busy"))

            // The job started before the kill is not lost: it completes, with one stored, intact backup.
            let finished = try await system.finishedJob(job.id)
            #expect(finished.state == .succeeded, "\(finished)")
            let stored = try await system.backups(job: job.id)
            #expect(stored.count == 1 && stored.first?.ownerName == "fw-busy", "\(stored)")
            try await system.expectIntact(stored)
            // And new work runs on the restarted bus.
            let later = try await system.startJob("fw-later")
            #expect(try await system.finishedJob(later.id).state == .succeeded)
            FaultFigures(
                fault: "`kill -9` of the bus, restarted on the same endpoints", expected: 2,
                backups: stored + (try await system.backups(job: later.id)), held: seconds(from: killedAt, to: restartedAt),
                recover: seconds(from: killedAt, to: finished.finishedAt),
                recovery: "kill → the job it cut off finished (the job's finish time); 2nd target: a job started after recovery"
            ).report()
        }
    }

    // MARK: PostgreSQL

    @Test("P10: PostgreSQL stopped and restarted mid-run: services answer UNAVAILABLE meanwhile, recover by themselves, nothing accepted is lost")
    func postgresRestarted() async throws {
        let postgres = PrivatePostgres()
        do {
            try await postgresScenario(postgres)
        } catch {
            await postgres.destroy()
            throw error
        }
        await postgres.destroy()
    }

    private func postgresScenario(_ postgres: PrivatePostgres) async throws {
        let url = try await postgres.start()
        let system = try RunningSystem(database: url)
        defer { system.stopInBackground() }
        do {
            var spec = FleetSpec()
            spec.device("fw-pg-1")
            spec.device("fw-pg-2")
            let services = [
                try system.start("inventory"),
                try system.start("storage", ["--dir", system.logDirectory + "/storage"]),
                try system.start(
                    "backup-worker",
                    ["--instance-id", "worker-pg", "--retry-base-seconds", "0", "--schedule-interval-ms", "200"]),
            ]
            let specPath = system.logDirectory + "/fleet.json"
            try JSONEncoder().encode(spec).write(to: URL(fileURLWithPath: specPath))
            try system.addDeviceKeys(spec.devices.map(\.name))
            let fleet = try system.start(
                "device-agent", ["fleet", "--dir", system.logDirectory + "/fleet", "--spec", specPath, "--register"])
            try await system.waitUntilServing(InventoryAPI.serviceName)
            try await system.waitUntilServing("storage")
            try await system.waitUntilServing(BackupAPI.serviceName)
            let ids = try await eventually("the fleet is registered and connected") {
                let result = try await system.rampart(["devices", "list", "--output", "json", "--timeout", "5"])
                let devices = (try? OperatorJSON.decode(Rampart_Inventory_V1_ListDevicesResponse.self, from: result.stdout))?.devices ?? []
                return (devices.filter(\.connected).count == 2 ? devices.map(\.id) : nil, "\(result)")
            }
            for id in ids { try await system.waitUntilServing("device/\(id)") }

            // Accepted before the stop: a finished backup, and a device registered by an operator.
            let before = try await system.startJob("fw-pg-1")
            #expect(try await system.finishedJob(before.id).state == .succeeded)
            let storedBefore = try await system.backups(job: before.id)
            #expect(storedBefore.count == 1)
            let registered = try await system.rampart(deviceArguments("fw-accepted", serial: "PGX1", ip: "10.9.9.9"))
            #expect(registered.exitCode == 0, "\(registered)")

            let stoppedAt = Date()
            try await postgres.stop()

            // Meanwhile: UNAVAILABLE (exit 5), for reads and writes, from every service.
            for command in [
                ["devices", "list"], ["backups", "list"], ["jobs", "list"], ["backup", "start", "fw-pg-2"],
            ] {
                let result = try await eventually("rampart \(command.joined(separator: " ")) reports UNAVAILABLE") {
                    let result = try await system.rampart(command + ["--timeout", "3"])
                    return (result.exitCode == 5 ? result : nil, "\(result)")
                }
                #expect(result.stderr.uppercased().contains("UNAVAILABLE"), "rampart \(command): \(result)")
            }
            let objects = try await bounded("ListObjects while the database is down", .seconds(60)) { () -> RPCError? in
                do {
                    _ = try await system.storedObjects()
                    return nil
                } catch let error as RPCError { return error }
            }
            #expect(objects?.code == .unavailable, "storage: \(String(describing: objects))")

            try await postgres.start()
            let startedAt = Date()

            // They recover by themselves: the same processes answer again, and nothing accepted is lost.
            let listed = try await eventually("inventory answers again", timeout: .seconds(180), every: .seconds(1)) {
                let result = try await system.rampart(["devices", "list", "--output", "json", "--timeout", "5"])
                let devices = (try? OperatorJSON.decode(Rampart_Inventory_V1_ListDevicesResponse.self, from: result.stdout))?.devices
                return (devices, "\(result)")
            }
            let answeredAt = Date()
            #expect(Set(listed.map(\.name)) == ["fw-pg-1", "fw-pg-2", "fw-accepted"])
            for process in services + [fleet] { #expect(process.isRunning, "\(process.commandLine) died") }
            let storedAfter = try await eventually("backup-worker answers again", timeout: .seconds(180), every: .seconds(1)) {
                (try? await system.backups(job: before.id), "no answer")
            }
            #expect(storedAfter.map(\.id) == storedBefore.map(\.id))
            try await system.expectIntact(storedAfter)
            let after = try await eventually("a backup can be started again", timeout: .seconds(180), every: .seconds(1)) {
                (try? await system.startJob("fw-pg-2"), "backup start refused")
            }
            #expect(try await system.finishedJob(after.id).state == .succeeded)
            FaultFigures(
                test: "postgresRestarted", fault: "PostgreSQL stopped, then started again", expected: 2,
                backups: storedAfter + (try await system.backups(job: after.id)), held: seconds(from: stoppedAt, to: startedAt),
                recover: seconds(from: stoppedAt, to: answeredAt),
                recovery: "stop → inventory answers `devices list` again (polled every second); targets: a backup from before the stop, one after"
            ).report()
        } catch {
            Issue.record("logs:\n\(system.logs)")
            throw error
        }
    }

    // MARK: storage killed

    @Test("P10: storage killed (kill -9) during an upload: no partial object is ever visible; the job is retried and completes")
    func storageKilledDuringUpload() async throws {
        var spec = FleetSpec()
        spec.configSize = "8MiB"
        spec.device("fw-big", slowExportMs: 700)
        let backup = try await BackupSystem.start(spec)
        let storage = try #require(backup.storage)
        defer { backup.system.stopInBackground() }
        do {
            let system = backup.system
            let uploads = backup.storageDir + "/uploads"
            let job = try await system.startJob("fw-big")
            // At least one sealed 64 KiB frame on disk: the upload is under way.
            let part = try await eventually("an upload is under way", every: .milliseconds(20)) {
                let parts = filesUnder(uploads).filter { $0.key.hasSuffix(".part") && $0.value > 96 + 65_552 }
                return (parts.first?.key, "\(filesUnder(backup.storageDir))")
            }
            let killedAt = Date()
            storage.kill9()

            // Nothing partial is visible: no object file, no backup record.
            #expect(filesUnder(backup.storageDir + "/objects").isEmpty, "\(filesUnder(backup.storageDir))")
            #expect(try await system.backups(job: job.id).isEmpty)
            #expect(filesUnder(uploads)[part] != nil, "the partial upload stays private in uploads/")

            // Storage stays down until the system can tell: the broker has dropped the killed instance (after
            // missed heartbeats), so the worker's calls to storage (one in flight there, if any, and its retries)
            // find none and end UNAVAILABLE. Only then does a new one start.
            try await system.waitUntilServing("storage", instances: 0, timeout: .seconds(60))
            let restartedAt = Date()
            try system.start("storage", ["--dir", backup.storageDir])
            try await system.waitUntilServing("storage", timeout: .seconds(90))

            let finished = try await system.finishedJob(job.id)
            #expect(finished.state == .succeeded, "\(finished)")
            let stored = try await system.backups(job: job.id)
            #expect(stored.count == 1, "\(stored)")
            let objects = try await system.storedObjects()
            #expect(objects.map(\.objectID) == stored.map(\.objectID), "only complete objects are listed: \(objects)")
            #expect(objects.first?.size == stored.first?.size)
            let onDisk = filesUnder(backup.storageDir + "/objects").keys.filter { $0.hasSuffix(".obj") }
            #expect(onDisk.map { ($0 as NSString).lastPathComponent } == stored.map { $0.objectID + ".obj" }, "\(onDisk)")
            try await system.expectIntact(stored)
            let verify = try await system.rampart("storage", "verify", "--timeout", "60")
            #expect(verify.exitCode == 0, "\(verify)")
            FaultFigures(
                fault: "`kill -9` of storage during an upload", expected: 1, backups: stored,
                held: seconds(from: killedAt, to: restartedAt), recover: seconds(from: killedAt, to: finished.finishedAt),
                recovery: "kill → the job finished (its finish time)"
            ).report()
        } catch {
            Issue.record("logs:\n\(backup.system.logs)")
            throw error
        }
    }

    // MARK: frozen worker

    @Test("P10: a worker frozen (SIGSTOP) past its lease: another worker takes the job, the frozen one's late writes are fenced off, one backup record")
    func frozenWorkerFenced() async throws {
        var spec = FleetSpec()
        // ~12 s per attempt, a 6 s lease: frozen past its lease long before the attempt could end, and each
        // 1 MiB chunk (2 s) read well within the lease, so the device keeps attempt 2's export even on a
        // loaded machine (it releases one left unread for the lease's length).
        spec.configSize = "6MiB"
        spec.device("fw-slow", slowExportMs: 2000)
        try await withBackupSystem(spec, workers: 2, leaseSeconds: 6) { backup in
            let system = backup.system
            let job = try await system.startJob("fw-slow")
            let started = try await collectEvents(system, since: 0, count: 1, prefix: "backup.task.started")
            let owner = started.first?.attributes["worker"] ?? ""
            let index = try #require(["worker-1", "worker-2"].firstIndex(of: owner), "started by '\(owner)'")
            let frozen = backup.workers[index]
            let other = ["worker-1", "worker-2"][1 - index]
            let frozenAt = Date()
            frozen.send(SIGSTOP)
            defer { frozen.send(SIGCONT) }

            // The lease runs out; the other worker claims the task (attempt 2, a new token).
            let taken = try await eventually("the other worker takes the task") {
                let (current, seen) = try await system.job(job.id)
                return ((current?.tasks.first?.attempts ?? 0) >= 2 ? current : nil, seen)
            }
            #expect(taken.tasks.first?.state == .taskRunning, "\(taken)")
            let thawedAt = Date()
            frozen.send(SIGCONT)

            let finished = try await system.finishedJob(job.id)
            #expect(finished.state == .succeeded, "\(finished)")
            // The woken worker finds its lease gone and writes nothing.
            _ = try await eventually("the woken worker notices its lease is lost", timeout: .seconds(90)) {
                (frozen.log.contains("lease lost") ? () : nil, String(frozen.log.suffix(2000)))
            }
            // No room left for a late write: the woken worker logs "lease lost" last, once its attempt has ended
            // (its runner and lease keeper done, whatever it wrote or was refused), and the job is finished, so
            // nothing more of either attempt can come. What they wrote is in the database; its events reach the
            // journal, which the checks below replay, a moment later (the bus moves them from the outbox): wait
            // until every event written by now has been moved, then check that none is a late write.
            let database = system.database
            let written = try #require(
                try await onOwnThread {
                    try PostgresConnection(connectionString: database).query(
                        "SELECT coalesce(max(id), 0) AS id FROM events.outbox"
                    ).first?.decode("id", as: Int.self)
                })
            try await eventually("every event written so far is in the journal") {
                let left = try #require(
                    try await onOwnThread {
                        try PostgresConnection(connectionString: database).query(
                            "SELECT count(*) AS n FROM events.outbox WHERE id <= \(written)"
                        ).first?.decode("n", as: Int.self)
                    })
                return (left == 0 ? () : nil, "\(left) of the events up to outbox id \(written) not yet in the journal")
            }
            let (after, seen) = try await system.job(job.id)
            #expect(after?.state == .succeeded && after?.tasks.first?.attempts == 2, "\(seen)")
            let stored = try await system.backups(job: job.id)
            #expect(stored.count == 1 && stored.first?.ownerName == "fw-slow", "exactly one backup record: \(stored)")

            let client = system.client(caller: "fault-test")
            defer { client.close() }
            var replay = Rampart_Bus_V1_ReplayRequest()
            replay.topicPrefix = "backup."
            replay.limit = 10_000
            let events: Rampart_Bus_V1_ReplayResponse = try await client.call(
                JournalAPI.replay, replay, idempotent: true)
            let ofJob = events.events.filter { $0.subject == job.id || $0.attributes["job_id"] == job.id }
            let starts = ofJob.filter { $0.topic == "backup.task.started" }
            #expect(starts.map { $0.attributes["worker"] ?? "" } == [owner, other], "\(starts)")
            #expect(ofJob.filter { $0.topic == "backup.stored" }.count == 1)
            #expect(ofJob.filter { $0.topic == "backup.task.succeeded" }.count == 1)
            #expect(ofJob.filter { $0.topic.hasPrefix("backup.job.") && $0.topic != "backup.job.progress" }.map(\.topic)
                == ["backup.job.queued", "backup.job.started", "backup.job.succeeded"])
            FaultFigures(
                fault: "a worker frozen (`SIGSTOP`) past its 6 s lease", expected: 1, backups: stored,
                held: seconds(from: frozenAt, to: thawedAt), recover: seconds(from: frozenAt, to: finished.finishedAt),
                recovery: "SIGSTOP → the job finished on the other worker (its finish time); held: until the takeover was seen"
            ).report()
        }
    }

    // MARK: subscriber away

    @Test("P10: a subscriber away during 1,000 events replays them all, in order, exactly once")
    func subscriberAwayReplays() async throws {
        // Plain mode: each call names itself ("fault-17") and inventory copies that name into its event,
        // so each event says which call made it. (With CURVE the name is the key's, the same for all.)
        try await withSystem(plain: true) { system in
            let registered = try await system.rampart(deviceArguments("fw-events", serial: "EV1", ip: "10.8.0.1"))
            #expect(registered.exitCode == 0, "\(registered)")
            let client = system.client(caller: "fault-test")
            defer { client.close() }
            // The registration's event reaches the journal a moment after the call (outbox → journal): wait for
            // it, so that the saved position below is after it.
            try await eventually("the registration is in the journal") {
                var replay = Rampart_Bus_V1_ReplayRequest()
                replay.topicPrefix = "inventory.device."
                let events: Rampart_Bus_V1_ReplayResponse = try await client.call(
                    JournalAPI.replay, replay, idempotent: true)
                return (events.events.contains { $0.subject.isEmpty == false } ? () : nil, "\(events.events.count) events")
            }
            let info: Rampart_Bus_V1_JournalInfoResponse = try await client.call(
                JournalAPI.info, Rampart_Bus_V1_JournalInfoRequest(),
                idempotent: true)
            let awayAt = Date()
            var lookup = Rampart_Inventory_V1_GetDeviceRequest()
            lookup.device = "fw-events"
            var connected = (try await client.call(
                InventoryAPI.getDevice, lookup, idempotent: true)).device.connected

            // The subscriber is away (saved position: info.lastSeq) while 1,000 events happen, and one more after.
            let count = 1000
            for index in 0...count {
                connected.toggle()
                var report = Rampart_Inventory_V1_ReportPresenceRequest()
                report.device = "fw-events"
                report.connected = connected
                let _: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                    InventoryAPI.reportPresence, report,
                    timeout: .seconds(30), metadata: ["caller": index == count ? "fault-marker" : "fault-\(index)"])
            }
            let expected = (0..<count).map { "fault-\($0)" } + ["fault-marker"]

            // Back: the Swift EventSubscriber from the saved position.
            let backAt = Date()
            let replayed = try await collectEvents(system, since: info.lastSeq, count: count + 1, prefix: "inventory.device.")
            let replayedAt = Date()
            Self.checkExactlyOnceInOrder(replayed.map { ($0.seq, $0.attributes["caller"] ?? "") }, expected: expected)

            // And the CLI: `rampart events tail --since N`.
            let tail = try await system.rampart(
                "events", "tail", "--since", "\(info.lastSeq)", "--topic", "inventory.device.", "--count", "\(count + 1)",
                "--follow", "--timeout", "30")
            #expect(tail.exitCode == 0, "\(tail.stderr)")
            let lines = tail.stdout.split(separator: "\n").map { line -> (UInt64, String) in
                let fields = line.components(separatedBy: "  ")
                let caller = fields.first { $0.hasPrefix("caller=") }.map { String($0.dropFirst("caller=".count)) } ?? ""
                return (UInt64(fields.first ?? "") ?? 0, caller)
            }
            Self.checkExactlyOnceInOrder(lines, expected: expected)
            FaultFigures(
                fault: "a subscriber away while 1,001 events happen", expected: expected.count, received: replayed.map(\.seq),
                held: seconds(from: awayAt, to: backAt), recover: seconds(from: backAt, to: replayedAt),
                recovery: "back (EventSubscriber from its saved position) → all events received; held: how long it was away"
            ).report()
        }
    }

    private static func checkExactlyOnceInOrder(_ events: [(seq: UInt64, caller: String)], expected: [String]) {
        #expect(events.count == expected.count, "\(events.count) events delivered, \(expected.count) expected")
        let seqs = events.map(\.seq)
        #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }, "sequence numbers strictly increase (no repeat)")
        let callers = events.map(\.caller)
        if callers != expected {
            let first = zip(callers, expected).enumerated().first { $0.element.0 != $0.element.1 }
            Issue.record("events out of order or missing; first difference at \(first.map { "\($0.offset): \($0.element)" } ?? "the end")")
        }
    }

    // MARK: disk full

    @Test("P10: disk full on the storage folder: the upload fails with a clear error, the job fails with that reason, nothing half-written remains")
    func diskFull() async throws {
        var spec = FleetSpec()
        spec.configSize = "8MiB"
        spec.device("fw-huge")
        var mounted: String?
        defer { if let mounted { unmount(mounted) } }
        let backup = try await BackupSystem.start(spec) { directory in
            try mountTmpfs(directory, size: "4m")
            mounted = directory
        }
        defer { backup.system.stopInBackground() }
        do {
            let system = backup.system
            let startedAt = Date()
            let job = try await system.startJob("fw-huge")
            let finished = try await system.finishedJob(job.id)
            #expect(finished.state == .failed, "\(finished)")
            let task = try #require(finished.tasks.first)
            #expect(task.state == .taskFailed)
            #expect(
                task.message.contains("RESOURCE_EXHAUSTED") && task.message.contains("storage folder is full"),
                "the job says why: \(task.message)")
            #expect(try await system.backups(job: job.id).isEmpty)
            #expect(try await system.storedObjects().isEmpty)
            // Storage says it too, in its own log, with the path and errno of the failed write.
            let storageLog = backup.storage?.log ?? ""
            #expect(
                storageLog.contains("a resource ran out") && storageLog.contains("No space left on device"),
                "storage logs the disk-full failure it reports")
            // Nothing half-written remains: no object, no partial upload, nothing in the trash.
            let left = filesUnder(backup.storageDir).keys.filter { $0 != "master.key" }
            #expect(left.isEmpty, "left in the storage folder: \(left)")

            // The storage call itself fails with a clear error (and nothing of it stays either).
            let client = system.client(caller: "fault-test")
            defer { client.close() }
            var begin = Rampart_Storage_V1_BeginUploadRequest()
            begin.fileName = "too-big.tar"
            begin.contentType = "application/x-tar"
            begin.owner = "fault-test"
            begin.size = 6 << 20
            let upload: Rampart_Storage_V1_BeginUploadResponse = try await client.call(
                StorageAPI.beginUpload, begin, timeout: .seconds(30))
            var failure: RPCError?
            for index in 0..<6 where failure == nil {
                var chunk = Rampart_Storage_V1_UploadChunkRequest()
                chunk.uploadID = upload.uploadID
                chunk.offset = UInt64(index << 20)
                chunk.data = Data((0..<(1 << 20)).map { _ in UInt8.random(in: 0...255) })
                do {
                    let _: Rampart_Storage_V1_UploadChunkResponse = try await client.call(
                        StorageAPI.uploadChunk, chunk, timeout: .seconds(30))
                } catch let error as RPCError { failure = error }
            }
            #expect(failure?.code == .resourceExhausted, "\(String(describing: failure))")
            #expect(failure?.message.contains("full") == true, "\(String(describing: failure))")
            var abort = Rampart_Storage_V1_AbortUploadRequest()
            abort.uploadID = upload.uploadID
            let _: Rampart_Storage_V1_AbortUploadResponse = try await client.call(
                StorageAPI.abortUpload, abort, timeout: .seconds(30))
            #expect(filesUnder(backup.storageDir).keys.filter { $0 != "master.key" }.isEmpty)
            FaultFigures(
                fault: "disk full on the storage folder (the job must fail, storing nothing)", expected: 0,
                backups: try await system.backups(job: job.id), recover: seconds(from: startedAt, to: finished.finishedAt),
                recovery: "no recovery (the disk stays full): job started → the job finished (it must fail, with the reason, after 3 attempts)"
            ).report()
        } catch {
            Issue.record("logs:\n\(backup.system.logs)")
            throw error
        }
    }
}
