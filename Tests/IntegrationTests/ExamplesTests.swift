import Foundation
import RampartAPI
import RampartBus
import RampartDatabase
import RampartJSON
import RampartProto
import RampartTesting
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// P12: the bus used from other languages with nothing but `proto/` and docs/protocol.md. Builds
/// examples/c-subscriber (protoc-c, libzmq) and examples/python (pyzmq + protobuf from PyPI) with
/// their own scripts and runs them against a live system.
@Suite("Integrations: the C subscriber and the Python client against a live system (P12)", .serialized)
struct ExamplesTests {
    @Test("P12: the C subscriber prints every backup event once, in order, across a kill -9 and restart")
    func cSubscriberSurvivesKill() async throws {
        let binary = try await Examples.cSubscriber.value
        var spec = FleetSpec()
        spec.configSize = "4MiB"  // 4 chunks per device, each read slowly: the job takes a few seconds
        spec.device("slow-a", model: "FPR-4215", slowExportMs: 500)
        spec.device("slow-b", model: "FPR-4215", slowExportMs: 500)
        spec.haPairs.append(FleetSpec.Pair(name: "slow", primary: "slow-a", secondary: "slow-b"))
        spec.device("solo")
        try await withBackupSystem(spec) { system in
            let subscriber = CSubscriberRuns(binary: binary, system: system.system)
            let client = system.system.client()
            defer { client.close() }

            // Run 1 kills itself (SIGKILL) right after printing its 2nd line, before saving the position:
            // the worst moment. Events of other topics come in between: skipped, but they advance the seq.
            let first = try subscriber.start(["--test-kill-after", "2"])
            let job = try await startBackup(client, "pair:slow", "device:solo")
            try await waitUntil("run 1 killed itself", timeout: 30) { !first.isRunning }
            #expect(first.log.contains("test: SIGKILL after printing"), "\(first.log)")
            #expect(subscriber.lines().count == 2, "run 1 printed 2 lines")

            // Run 2 cuts off the unsaved line, resumes, and is killed from outside in the middle of the job.
            let second = try subscriber.start()
            try await waitUntil("run 2 printed 5 lines", timeout: 30) { subscriber.lines().count >= 5 }
            second.kill9()
            let atKill = try await getJob(client, job)
            try #require(!atKill.state.isFinished, "the kill must land while the backup runs: \(atKill)")
            #expect(second.log.contains("discarded") && second.log.contains("(1 line(s))"), "\(second.log)")

            // Run 3 resumes after the last saved seq and sees the job to its end.
            let third = try subscriber.start()
            var finished = try await getJob(client, job)
            try await waitUntil("the job finished", timeout: 60) {
                finished = try await getJob(client, job)
                return finished.state.isFinished
            }
            #expect(finished.state == .succeeded, "\(finished)")

            // The journal's backup events, complete, against what the subscriber printed in all. (The bus
            // moves committed events from the outbox into the journal a moment after the job's end.)
            var journal: [Rampart_Bus_V1_Event] = []
            try await waitUntil("the journal holds the job's end", timeout: 20) {
                journal = try await replayAll(client, prefix: "backup.")
                return journal.contains { $0.topic == "backup.job.succeeded" && $0.subject == job }
            }
            try await waitUntil("run 3 printed the journal's \(journal.count) backup events", timeout: 20) {
                subscriber.lines().count >= journal.count
            }
            #expect(await third.stop(), "run 3 stops gracefully on SIGTERM (exit 0): \(third.log)")
            let printed = subscriber.lines()
            #expect(printed == journal.map(CSubscriberRuns.line), "every event once, in order, nothing else")
            #expect(printed.filter { $0.contains(job) }.count >= 10, "the job's events are there: \(printed)")

            // The same, as `rampart events tail` reads it (its own replay of the journal).
            let tail = try await system.system.rampart(
                "events", "tail", "--since", "0", "--topic", "backup.", "--count", "\(journal.count)", "--output", "json")
            #expect(tail.exitCode == 0, "\(tail)")
            let tailed = try tail.stdout.split(separator: "\n").map { try OperatorJSON.decode(Rampart_Bus_V1_Event.self, from: String($0)) }
            #expect(tailed.map(CSubscriberRuns.line) == printed)
        }
    }

    @Test("P12: the C subscriber reports bad frames on stderr, skips them, and fills gaps and duplicates from the journal")
    func cSubscriberSkipsBadFrames() async throws {
        let binary = try await Examples.cSubscriber.value
        var spec = FleetSpec()
        spec.pair("ha")
        try await withBackupSystem(spec) { system in
            let client = system.system.client()
            defer { client.close() }
            // A publisher of our own stands in for the bus's PUB socket (with the broker's key, as the
            // subscriber expects); the journal stays the real one.
            let brokerKey = try system.system.keys.map { try BusKeyFile.load($0.brokerKeyPath).keys.secretKey }
            let publisher = try FakePublisher(curveSecretKey: brokerKey)
            defer { publisher.stop() }
            let info: Rampart_Bus_V1_JournalInfoResponse = try await client.call(
                JournalAPI.info,
                Rampart_Bus_V1_JournalInfoRequest(), idempotent: true)
            publisher.heartbeat(lastSeq: info.lastSeq)  // "nothing new": keeps the subscriber on the live path
            let subscriber = CSubscriberRuns(binary: binary, system: system.system)
            let run = try subscriber.start(["--events", publisher.endpoint, "--since", "\(info.lastSeq)"])
            try await waitUntil("the subscriber subscribed", timeout: 20) { publisher.subscribed }

            let (job, code) = try await system.backUp("ha")
            #expect(code == 0 && job.state == .succeeded, "\(job)")
            var events: [Rampart_Bus_V1_Event] = []
            try await waitUntil("the journal holds the job's end", timeout: 20) {
                events = try await replayAll(client, prefix: "", since: info.lastSeq)
                return events.contains { $0.topic == "backup.job.succeeded" && $0.subject == job.id }
            }
            try #require(events.count >= 4, "\(events)")
            let frames = { (event: Rampart_Bus_V1_Event) throws -> [Data] in
                [Data(event.topic.utf8), try event.serializedData()]
            }
            publisher.send([
                [Data("one frame only".utf8)],
                [Data("backup.x".utf8), Data("a".utf8), Data("b".utf8)],
                [Data([0xff, 0xfe]), Data("x".utf8)],  // topic not UTF-8
                [Data("backup.job.queued".utf8), Data([0xff, 0xff, 0xff])],  // not an Event
                [Data("$heartbeat".utf8), Data([0x08])],  // not a PublisherHeartbeat (truncated varint)
                try frames(events[0]),  // next in order: printed from the live stream
                try frames(events[0]),  // duplicate: skipped
                try frames(events[2]),  // gap (events[1] lost): the journal fills it and everything after
                try frames(events[1]),  // old: skipped
            ])
            publisher.heartbeat(lastSeq: try #require(events.last).seq)
            let expected = events.filter { $0.topic.hasPrefix("backup.") }.map(CSubscriberRuns.line)
            try await waitUntil("the subscriber printed \(expected.count) lines", timeout: 20) {
                subscriber.lines().count >= expected.count
            }
            // A marker after everything sent: once it is printed, any wrong extra line would be before it.
            var marker = try #require(events.last)
            marker.seq += 1
            marker.topic = "backup.marker"
            publisher.send([try frames(marker)])
            try await waitUntil("the subscriber printed the marker", timeout: 20) {
                subscriber.lines().count >= expected.count + 1
            }
            #expect(run.isRunning, "bad frames are never fatal: \(run.log)")
            #expect(subscriber.lines() == expected + [CSubscriberRuns.line(marker)], "\(run.log)")
            for report in [
                "a message of 1 frames", "a message of 3 frames", "topic is not UTF-8", "undecodable Event",
                "undecodable PublisherHeartbeat",
            ] {
                #expect(run.log.contains("bad frame skipped: \(report)"), "\(report): \(run.log)")
            }
            #expect(await run.stop(), "stops gracefully on SIGTERM: \(run.log)")
        }
    }

    @Test("P12: the Python client's HA pair backup, followed by events, reports exactly the files `rampart backups list` shows; a failing pair exits 8 with its reason")
    func pythonClientBacksUpPair() async throws {
        let python = try await Examples.python.value
        var spec = FleetSpec()
        spec.pair("good")
        spec.device("bad-a", model: "FPR-4215", failExport: true)
        spec.device("bad-b", model: "FPR-4215")
        spec.haPairs.append(FleetSpec.Pair(name: "bad", primary: "bad-a", secondary: "bad-b"))
        try await withBackupSystem(spec) { system in
            let good = try await ChildProcess.run(
                python, [Examples.backupPair, "good", "--output", "json", "--wait", "60"],
                environment: system.system.environment(as: "operator"))
            #expect(good.exitCode == 0, "\(good)")
            let report = try JSONDecoder().decode(PythonReport.self, from: Data(good.stdout.utf8))
            #expect(report.job.state == "SUCCEEDED")
            #expect(Set(report.devices.map(\.name)) == ["good-a", "good-b", "bad-a", "bad-b"], "it listed the devices")
            #expect(good.stderr.contains("backup.job.succeeded"), "it followed the job from the event stream: \(good)")

            let listed = try await system.backups(job: report.job.id)
            #expect(listed.count == 2)
            let files = { (list: [PythonReport.File]) in list.sorted { $0.file_name < $1.file_name } }
            #expect(
                files(report.backups)
                    == files(listed.map { .init(id: $0.id, file_name: $0.fileName, sha256: $0.sha256, size: $0.size) }))

            let bad = try await ChildProcess.run(
                python, [Examples.backupPair, "bad", "--output", "json", "--wait", "60"],
                environment: system.system.environment(as: "operator"))
            #expect(bad.exitCode == 8, "a failed backup exits 8: \(bad)")
            #expect(bad.stderr.contains("FAILED") && bad.stderr.contains("simulated export failure"), "\(bad)")
            let failed = try JSONDecoder().decode(PythonReport.self, from: Data(bad.stdout.utf8))
            #expect(failed.job.state == "FAILED" && failed.backups.isEmpty)
            #expect(try await system.backups(job: failed.job.id).isEmpty)
        }
    }

    @Test("P12: with no bus, the Python client and the C subscriber exit 5 within their deadline, never hang")
    func examplesWithoutBus() async throws {
        let python = try await Examples.python.value
        let binary = try await Examples.cSubscriber.value
        let nowhere = "tcp://127.0.0.1:\(FreePort.next())"
        let clock = ContinuousClock()
        let start = clock.now
        let client = try await ChildProcess.run(
            python, [Examples.backupPair, "ha", "--bus", nowhere, "--timeout", "1"], environment: [:])
        #expect(client.exitCode == 5, "\(client)")
        #expect(client.stderr.contains("DEADLINE_EXCEEDED"), "\(client)")
        let subscriber = try await ChildProcess.run(binary, ["--bus", nowhere, "--timeout-ms", "1000"], environment: [:])
        #expect(subscriber.exitCode == 5, "\(subscriber)")
        #expect(subscriber.stderr.contains("unreachable"), "\(subscriber)")
        #expect(clock.now - start < .seconds(15), "each gave up after its 1 s deadline")
    }
}

// MARK: - building the examples

/// The examples, built once per test process by their own scripts.
enum Examples {
    /// The repository's root (this file is Tests/IntegrationTests/ExamplesTests.swift).
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static let backupPair = repository + "/examples/python/backup_pair.py"

    /// `examples/c-subscriber/build.sh` into a fresh folder; the path of the binary.
    static let cSubscriber = Task<String, any Error> {
        let out = NSTemporaryDirectory() + "rampart-c-subscriber-\(UUID().uuidString.prefix(8))"
        let result = try await ChildProcess.run("/bin/bash", [repository + "/examples/c-subscriber/build.sh", out])
        guard result.exitCode == 0 else { throw SetupError(description: "building the C subscriber failed: \(result)") }
        return out + "/c-subscriber"
    }

    /// `examples/python/setup.sh` into `.build-examples-cache/python-venv` (rebuilt only when
    /// requirements.txt changes); the path of its interpreter. Fails when PyPI cannot be reached.
    static let python = Task<String, any Error> {
        let venv = repository + "/.build-examples-cache/python-venv"
        let result = try await ChildProcess.run("/bin/bash", [repository + "/examples/python/setup.sh", venv])
        guard result.exitCode == 0 else {
            throw SetupError(description: "setting up the Python example failed (PyPI unreachable?): \(result)")
        }
        return venv + "/bin/python"
    }

    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }
}

/// What `backup_pair.py --output json` prints.
struct PythonReport: Decodable {
    struct Device: Decodable {
        var id: String
        var name: String
    }
    struct Job: Decodable {
        var id: String
        var state: String
    }
    struct File: Decodable, Equatable {
        var id: String
        var file_name: String
        var sha256: String
        var size: UInt64
    }
    var devices: [Device]
    var job: Job
    var backups: [File]
}

// MARK: - helpers

/// Successive runs of the C subscriber sharing one position file and one output file.
struct CSubscriberRuns {
    let binary: String
    let system: RunningSystem
    var outPath: String { system.logDirectory + "/c-subscriber.out" }
    var statePath: String { system.logDirectory + "/c-subscriber.state" }

    /// Starts a run following `backup.` from the beginning (or from the saved position).
    func start(_ extra: [String] = []) throws -> ChildProcess {
        let log = system.logDirectory + "/c-subscriber-\(UUID().uuidString.prefix(6)).log"
        var arguments = ["--prefix", "backup.", "--state", statePath, "--out", outPath]
        if !extra.contains("--since") { arguments += ["--since", "0"] }
        return try ChildProcess(binary, arguments + extra, environment: system.environment(as: "viewer"), logPath: log)
    }

    /// The complete lines printed so far, over every run.
    func lines() -> [String] {
        guard let text = try? String(contentsOfFile: outPath, encoding: .utf8) else { return [] }
        var lines = text.components(separatedBy: "\n")
        lines.removeLast()  // after the last newline: empty, or a line being written
        return lines
    }

    /// The line the subscriber prints for `event`: "SEQ  TOPIC  SUBJECT  key=value...", escaped.
    static func line(_ event: Rampart_Bus_V1_Event) -> String {
        let attributes = event.attributes.sorted { Array($0.key.utf8).lexicographicallyPrecedes($1.key.utf8) }
            .map { "\(escape($0.key))=\(escape($0.value))" }
        return (["\(event.seq)", escape(event.topic), event.subject.isEmpty ? "-" : escape(event.subject)] + attributes)
            .joined(separator: "  ")
    }

    private static func escape(_ text: String) -> String {
        var bytes: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): bytes += Array("\\\\".utf8)
            case 0..<0x20, 0x7f: bytes += Array(String(format: "\\x%02x", byte).utf8)
            default: bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A PUB endpoint of the test's own (XPUB, so it knows when the subscriber has subscribed): sends
/// scripted messages in order and, when set, a `$heartbeat` every 200 ms. Its socket lives on its thread.
final class FakePublisher: @unchecked Sendable {
    private let lock = NSLock()
    private var queue: [[Data]] = []
    private var lastSeq: UInt64?
    private var stopped = false
    private var isSubscribed = false
    private var boundEndpoint = ""
    private var failure: (any Error)?
    private let ready = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    private let curveSecretKey: String?

    /// A publisher; with `curveSecretKey`, a CURVE server with that key (no ZAP handler runs in the
    /// test process, so libzmq admits any client key).
    init(curveSecretKey: String? = nil) throws {
        self.curveSecretKey = curveSecretKey
        Thread.detachNewThread { [self] in run() }
        ready.wait()
        if let failure = lock.withLock({ failure }) { throw failure }
    }

    var endpoint: String { lock.withLock { boundEndpoint } }
    var subscribed: Bool { lock.withLock { isSubscribed } }

    func send(_ messages: [[Data]]) { lock.withLock { queue += messages } }
    func heartbeat(lastSeq: UInt64) { lock.withLock { self.lastSeq = lastSeq } }

    func stop() {
        guard lock.withLock({ () -> Bool in
            defer { stopped = true }
            return !stopped && failure == nil
        }) else { return }
        finished.wait()
    }

    private func run() {
        let socket: ZMQSocket
        do {
            socket = try ZMQSocket(.xpub)
            if let curveSecretKey { try socket.makeCurveServer(secretKey: curveSecretKey, domain: BrokerSecurity.eventsDomain) }
            try socket.bind("tcp://127.0.0.1:*")
            lock.withLock { boundEndpoint = socket.lastEndpoint }
        } catch {
            lock.withLock { failure = error }
            ready.signal()
            return
        }
        ready.signal()
        defer {
            socket.close()
            finished.signal()
        }
        var lastBeat = ContinuousClock.now - .seconds(1)
        while !lock.withLock({ stopped }) {
            // XPUB receives subscriptions: byte 1 then the prefix ("" here).
            while let frames = try? socket.receive(dontWait: true) {
                if frames.first?.first == 1 { lock.withLock { isSubscribed = true } }
            }
            let (batch, beat) = lock.withLock { () -> ([[Data]], UInt64?) in
                defer { queue = [] }
                return (queue, lastSeq)
            }
            for message in batch { _ = try? socket.send(message) }
            if let beat, ContinuousClock.now - lastBeat >= .milliseconds(200) {
                var heartbeat = Rampart_Bus_V1_PublisherHeartbeat()
                heartbeat.lastSeq = beat
                heartbeat.timeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
                _ = try? socket.send([Data(EventPublisher.heartbeatTopic.utf8), try heartbeat.serializedData()])
                lastBeat = ContinuousClock.now
            }
            usleep(10_000)
        }
    }
}

/// Starts a backup of `targets` ("pair:NAME", "device:NAME") without waiting; the job id.
private func startBackup(_ client: BusClient, _ targets: String...) async throws -> String {
    var request = Rampart_Backup_V1_StartBackupRequest()
    request.targets = targets.map { target in
        let parts = target.split(separator: ":", maxSplits: 1).map(String.init)
        var result = Rampart_Backup_V1_Target()
        result.kind = parts[0] == "pair" ? .haPair : .device
        result.ref = parts[1]
        return result
    }
    request.idempotencyKey = UUID().uuidString
    let response: Rampart_Backup_V1_JobResponse = try await client.call(
        BackupAPI.startBackup, request, idempotent: true)
    return response.job.id
}

/// Every journal event after `since` whose topic starts with `prefix`, through complete Replay answers.
private func replayAll(_ client: BusClient, prefix: String, since: UInt64 = 0) async throws -> [Rampart_Bus_V1_Event] {
    var events: [Rampart_Bus_V1_Event] = []
    var position = since
    while true {
        var request = Rampart_Bus_V1_ReplayRequest()
        request.sinceSeq = position
        request.topicPrefix = prefix
        request.limit = 1000
        let answer: Rampart_Bus_V1_ReplayResponse = try await client.call(
            JournalAPI.replay, request, idempotent: true)
        events += answer.events
        position = answer.events.last?.seq ?? position
        if answer.events.count < Int(request.limit) { return events }
    }
}

/// Polls `condition` every 50 ms until it holds; throws after `timeout` seconds.
private func waitUntil(_ what: String, timeout: Double, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw RunningSystem.TimeoutError(description: "timed out after \(timeout) s waiting until \(what)")
}
