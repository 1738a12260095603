import Crypto
import Foundation
import Postgres
import RampartAPI
import RampartBus
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// A webhook receiver for tests: Python's http.server on a loopback port, appending every POST it
/// takes (headers and body) as one JSON line to a file, answering 200 after the line is written (and
/// `answerDelay` seconds more, when given). It can be stopped (connection refused) and started again on
/// the same port.
final class WebhookReceiver: @unchecked Sendable {
    let port: Int
    let file: String
    let script: String
    let logPath: String
    let answerDelay: Double
    private(set) var process: ChildProcess?

    init(directory: String, name: String, answerDelay: Double = 0) throws {
        self.answerDelay = answerDelay
        port = FreePort.next()
        file = directory + "/\(name).jsonl"
        script = directory + "/receiver.py"
        logPath = directory + "/receiver-\(name).log"
        try Data(Self.python.utf8).write(to: URL(fileURLWithPath: script))
        FileManager.default.createFile(atPath: file, contents: nil)
    }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    func start() async throws {
        process = try ChildProcess("/usr/bin/env", ["python3", script, "\(port)", file, "\(answerDelay)"], logPath: logPath)
        for _ in 0..<200 {
            if let log = try? String(contentsOfFile: logPath, encoding: .utf8), log.contains("listening") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RunningSystem.TimeoutError(description: "the receiver on \(port) never listened")
    }

    func stop() async {
        _ = await process?.stop()
        process = nil
    }

    struct Delivery {
        var headers: [String: String]
        var body: String
        var object: [String: Any]
        var seq: UInt64 { (object["seq"] as? NSNumber)?.uint64Value ?? 0 }
        var topic: String { object["topic"] as? String ?? "" }
    }

    /// Every POST taken so far, in the order taken. A line the receiver is still writing (no line feed
    /// yet) is left for the next look.
    func deliveries() throws -> [Delivery] {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let complete = text.hasSuffix("\n") ? Substring(text) : text[..<(text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)]
        return try complete.split(separator: "\n").map { line in
            let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let body = record["body"] as? String ?? ""
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            return Delivery(headers: record["headers"] as? [String: String] ?? [:], body: body, object: object)
        }
    }

    static let python = """
        import http.server, json, sys, time
        port, out, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode()}
                with open(out, "a") as f:
                    f.write(json.dumps(record) + "\\n")
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        print("listening", flush=True)
        server.serve_forever()
        """
}

@Suite("P15: notifications (real processes)", .serialized)
struct NotifierTests {
    /// The events of the journal after `since` whose topic `topics` chose, in order.
    static func expected(_ client: BusClient, since: UInt64, topics: [String]) async throws -> [Rampart_Bus_V1_Event] {
        var events: [Rampart_Bus_V1_Event] = []
        var position = since
        while true {
            var request = Rampart_Bus_V1_ReplayRequest()
            request.sinceSeq = position
            request.limit = 1000
            let answer: Rampart_Bus_V1_ReplayResponse = try await client.call(JournalAPI.replay, request, timeout: .seconds(5))
            events += answer.events.filter { event in
                topics.contains { $0.hasSuffix(".") ? event.topic.hasPrefix($0) : event.topic == $0 }
            }
            guard let last = answer.events.last, answer.events.count == 1000 else { return events }
            position = last.seq
        }
    }

    /// Waits until `receiver` took (at least) every event of `expected`, then a moment more for any
    /// repeat, and returns what it took besides test events.
    static func waitFor(
        _ receiver: WebhookReceiver, _ expected: [Rampart_Bus_V1_Event], timeout: Duration = .seconds(60)
    ) async throws -> [WebhookReceiver.Delivery] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let taken = try receiver.deliveries().filter { $0.topic != "notify.test" }
            if taken.count >= expected.count {
                try await Task.sleep(for: .seconds(1))
                return try receiver.deliveries().filter { $0.topic != "notify.test" }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try receiver.deliveries().filter { $0.topic != "notify.test" }
    }

    @Test(
        "P15: every chosen event reaches each hook once, in order: a hook down for a while gets all it missed, the other is not held up; a notifier restart resumes without loss or repeat"
    )
    func onceInOrderAcrossOutagesAndRestarts() async throws {
        var spec = FleetSpec()
        spec.device("fw-ok")
        spec.device("fw-bad", failExport: true)
        try await withBackupSystem(spec) { system in
            let it = system.system
            let client = it.client()
            defer { client.close() }
            let retryArguments = [
                "--retry-base-seconds", "0.2", "--retry-max-seconds", "1", "--poll-ms", "200",
                "--master-key", it.logDirectory + "/notifier/master.key",
            ]
            var notifier = try it.start("notifier", retryArguments)
            try await it.waitUntilServing(NotifyAPI.serviceName)

            let up = try WebhookReceiver(directory: it.logDirectory, name: "up")
            let down = try WebhookReceiver(directory: it.logDirectory, name: "down")
            try await up.start()
            defer {
                up.process?.stopInBackground()
                down.process?.stopInBackground()
            }
            let secretFile = it.logDirectory + "/hook.secret"
            try Data("s3cret-key\n".utf8).write(to: URL(fileURLWithPath: secretFile))

            // Hook "up": every job event; hook "down": failures and stored backups, signed, its URL
            // holding credentials that must never be shown.
            let upTopics = ["backup.job."]
            let addUp = try await it.rampart(
                ["notify", "add", up.url, "--topic", "backup.job.*", "--output", "json"])
            #expect(addUp.exitCode == 0, "\(addUp)")
            let upHook = try OperatorJSON.decode(Rampart_Notify_V1_Hook.self, from: addUp.stdout)
            let downURL = "http://user:pa55word@127.0.0.1:\(down.port)/hook?token=tok3n"
            let downTopics = ["backup.job.failed", "backup.stored"]
            let addDown = try await it.rampart(
                ["notify", "add", downURL, "--topic", "backup.job.failed", "--topic", "backup.stored",
                 "--secret-file", secretFile, "--output", "json"])
            #expect(addDown.exitCode == 0, "\(addDown)")
            let downHook = try OperatorJSON.decode(Rampart_Notify_V1_Hook.self, from: addDown.stdout)
            #expect(downHook.signed && !upHook.signed)
            #expect(downHook.url == "http://***@127.0.0.1:\(down.port)/hook?token=***")
            // At rest the URL's credentials and the HMAC key are sealed: not in the database in any form.
            let atRest = try await onOwnThread { () throws -> String in
                let connection = try PostgresConnection(connectionString: it.database)
                return try connection.query("SELECT row_to_json(h)::text AS row FROM notify.hooks h")
                    .map { try $0.decode("row", as: String.self) }.joined(separator: "\n")
            }
            #expect(atRest.contains("url_sealed") && atRest.contains(downHook.id), "\(atRest.prefix(300))")
            for secret in ["pa55word", "tok3n", "s3cret-key", "user:"] { #expect(!atRest.contains(secret), "\(secret) at rest") }
            #expect(upHook.lastSeq == downHook.lastSeq || downHook.lastSeq > upHook.lastSeq)

            // While "down" is down: a good backup and a failed one.
            let (good, goodCode) = try await system.backUp("fw-ok")
            #expect(goodCode == 0, "\(good)")
            let (bad, badCode) = try await system.backUp("fw-bad")
            #expect(badCode == 8, "\(bad)")

            var upExpected = try await Self.expected(client, since: upHook.lastSeq, topics: upTopics)
            #expect(upExpected.contains { $0.topic == "backup.job.failed" } && upExpected.count >= 6, "\(upExpected.map(\.topic))")
            var upTaken = try await Self.waitFor(up, upExpected)
            #expect(upTaken.map(\.seq) == upExpected.map(\.seq), "hook up: every job event once, in order, though hook down is down")

            // Hook "down" is failing, and says so without its URL's secrets, in tables, JSON and logs.
            var listed = try await it.rampart("notify", "list", "--output", "json")
            var failing = Rampart_Notify_V1_Hook()
            for _ in 0..<100 {
                listed = try await it.rampart("notify", "list", "--output", "json")
                #expect(listed.exitCode == 0, "\(listed)")
                let hooks = try OperatorJSON.decode(Rampart_Notify_V1_ListHooksResponse.self, from: listed.stdout).hooks
                failing = try #require(hooks.first { $0.id == downHook.id })
                if failing.failures > 1 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(failing.failures > 1 && !failing.lastError.isEmpty, "\(failing)")
            let firstChosen = try #require(try await Self.expected(client, since: downHook.lastSeq, topics: downTopics).first)
            #expect(failing.lastSeq < firstChosen.seq, "a hook that is down stays before the event it has not taken")
            let table = try await it.rampart("notify", "list")
            #expect(table.exitCode == 0 && table.stdout.contains(downHook.id), "\(table)")
            for text in [listed.stdout, table.stdout, notifier.log, addDown.stdout, addDown.stderr] {
                #expect(!text.contains("pa55word") && !text.contains("tok3n") && !text.contains("s3cret-key"))
            }

            // "down" comes back: it gets every event it chose, once, in order, each signed.
            try await down.start()
            var downExpected = try await Self.expected(client, since: downHook.lastSeq, topics: downTopics)
            #expect(downExpected.map(\.topic).contains("backup.stored") && downExpected.map(\.topic).contains("backup.job.failed"))
            var downTaken = try await Self.waitFor(down, downExpected)
            #expect(downTaken.map(\.seq) == downExpected.map(\.seq), "hook down: all it missed, once, in order")
            for delivery in downTaken {
                let signature = delivery.headers["x-rampart-signature"] ?? ""
                let mac = HMAC<SHA256>.authenticationCode(for: Data(delivery.body.utf8), using: SymmetricKey(data: Data("s3cret-key".utf8)))
                #expect(signature == "sha256=" + mac.map { String(format: "%02x", $0) }.joined())
                #expect(delivery.headers["authorization"] == "Basic " + Data("user:pa55word".utf8).base64EncodedString())
            }
            #expect(try up.deliveries().allSatisfy { $0.headers["x-rampart-signature"] == nil })

            // The body: the event's facts and its message as the CLI's JSON.
            let stored = try #require(downTaken.first { $0.topic == "backup.stored" })
            #expect(stored.object["subject"] as? String != nil && stored.object["time"] as? String != nil)
            #expect((stored.object["attributes"] as? [String: String]) != nil)

            // A notifier restart: events while it is away arrive after, none lost, none twice.
            #expect(await notifier.stop(), "the notifier stops gracefully")
            let (again, againCode) = try await system.backUp("fw-ok")
            #expect(againCode == 0, "\(again)")
            await down.stop()
            let (badAgain, badAgainCode) = try await system.backUp("fw-bad")
            #expect(badAgainCode == 8, "\(badAgain)")
            notifier = try it.start("notifier", retryArguments)
            try await it.waitUntilServing(NotifyAPI.serviceName)
            upExpected = try await Self.expected(client, since: upHook.lastSeq, topics: upTopics)
            upTaken = try await Self.waitFor(up, upExpected)
            #expect(upTaken.map(\.seq) == upExpected.map(\.seq), "hook up after the restart: once, in order")
            try await down.start()
            downExpected = try await Self.expected(client, since: downHook.lastSeq, topics: downTopics)
            downTaken = try await Self.waitFor(down, downExpected)
            #expect(downTaken.map(\.seq) == downExpected.map(\.seq), "hook down after the restart and its second outage")
            #expect(Set(upTaken.map(\.seq)).count == upTaken.count && Set(downTaken.map(\.seq)).count == downTaken.count)

            // `notify test`: one test event, now, to the hook; refused to a viewer; exit codes per the README.
            let test = try await it.rampart("notify", "test", upHook.id)
            #expect(test.exitCode == 0, "\(test)")
            #expect(try up.deliveries().contains { $0.topic == "notify.test" && $0.seq == 0 })
            #expect(try await it.rampart(as: "viewer", ["notify", "test", upHook.id]).exitCode == 4)
            #expect(try await it.rampart(as: "viewer", ["notify", "list"]).exitCode == 0)
            #expect(try await it.rampart("notify", "add", "ftp://nowhere/x", "--topic", "backup.job.failed").exitCode == 6)
            #expect(try await it.rampart("notify", "add", up.url, "--topic", "Not A Topic").exitCode == 6)
            await down.stop()
            #expect(try await it.rampart("notify", "test", downHook.id).exitCode == 5)
            #expect(try await it.rampart("notify", "remove", downHook.id).exitCode == 0)
            #expect(try await it.rampart("notify", "remove", downHook.id).exitCode == 3)
            #expect(try await it.rampart("notify", "test", UUID().uuidString).exitCode == 3)
            await up.stop()
        }
    }

    @Test(
        "P15: a notifier killed (kill -9) while a hook is taking an event loses nothing: restarted with the same --instance-id it takes its hook back and sends what was not answered again, with the same X-Rampart-Delivery; every other event once, in order; a hook stored in the clear by an older notifier is sealed when one starts"
    )
    func killedMidDelivery() async throws {
        var spec = FleetSpec()
        spec.device("fw-ok")
        try await withBackupSystem(spec) { system in
            let it = system.system
            let client = it.client()
            defer { client.close() }
            let arguments = [
                "--instance-id", "notifier-kill-test", "--retry-base-seconds", "0.2", "--retry-max-seconds", "1", "--poll-ms", "200",
                "--master-key", it.logDirectory + "/notifier/master.key",
            ]
            var notifier = try it.start("notifier", arguments)
            try await it.waitUntilServing(NotifyAPI.serviceName)
            // Each POST is written down by the receiver, then answered 2 s later: a kill lands between the two.
            let slow = try WebhookReceiver(directory: it.logDirectory, name: "slow", answerDelay: 2)
            try await slow.start()
            defer { slow.process?.stopInBackground() }
            let add = try await it.rampart(["notify", "add", slow.url, "--topic", "backup.*", "--output", "json"])
            #expect(add.exitCode == 0, "\(add)")
            let hook = try OperatorJSON.decode(Rampart_Notify_V1_Hook.self, from: add.stdout)
            let (backup, code) = try await system.backUp("fw-ok")
            #expect(code == 0, "\(backup)")

            // The first POST is taken and not yet answered: kill -9.
            var taken: [WebhookReceiver.Delivery] = []
            for _ in 0..<3000 where taken.isEmpty {
                taken = try slow.deliveries()
                if taken.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            }
            try #require(!taken.isEmpty, "the receiver never took a POST")
            notifier.kill9()
            let killedAfter = try slow.deliveries().count

            notifier = try it.start("notifier", arguments)
            try await it.waitUntilServing(NotifyAPI.serviceName)
            let expected = try await Self.expected(client, since: hook.lastSeq, topics: ["backup."]).map(\.seq)
            #expect(expected.count >= 4, "a backup's events: \(expected)")
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(120)
            var deliveries = try slow.deliveries()
            while !Set(expected).isSubset(of: Set(deliveries.map(\.seq))) && clock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                deliveries = try slow.deliveries()
            }
            let seqs = deliveries.map(\.seq)
            // Nothing lost, order kept: the sequence without repeats is exactly the expected one.
            var unique: [UInt64] = []
            for seq in seqs where unique.last != seq { unique.append(seq) }
            #expect(unique == expected, "taken \(seqs), expected \(expected)")
            // At most the event in flight at the kill came twice, back to back, with the same delivery id.
            let repeated = seqs.count - unique.count
            #expect(repeated <= 1, "taken \(seqs)")
            if repeated == 1, let index = seqs.indices.dropFirst().first(where: { seqs[$0] == seqs[$0 - 1] }) {
                #expect(index == killedAfter, "the repeat is the POST the kill cut off: taken \(seqs), \(killedAfter) before the kill")
                let ids = [deliveries[index - 1], deliveries[index]].map { $0.headers["x-rampart-delivery"] ?? "" }
                #expect(ids[0] == ids[1] && ids[0] == "\(hook.id):\(seqs[index])", "\(ids)")
            }
            #expect(await notifier.stop(), "the restarted notifier stops gracefully")

            // A hook stored in the clear by an older notifier (schema notify v1) is sealed when one starts.
            let old = UUID()
            try await onOwnThread {
                let connection = try PostgresConnection(connectionString: it.database)
                try connection.execute(
                    """
                    INSERT INTO notify.hooks (id, url, topics, secret, created_at, created_by, last_seq)
                    VALUES (\(old), 'http://bot:0ldpa55@127.0.0.1:9/hook', '{backup.job.failed}', 'old-s3cret', now(), 'test', 0)
                    """)
            }
            notifier = try it.start("notifier", arguments)
            try await it.waitUntilServing(NotifyAPI.serviceName)
            let listed = try await it.rampart("notify", "list", "--output", "json")
            let hooks = try OperatorJSON.decode(Rampart_Notify_V1_ListHooksResponse.self, from: listed.stdout).hooks
            let sealed = try #require(hooks.first { $0.id == old.uuidString.lowercased() }, "\(listed)")
            #expect(sealed.url == "http://***@127.0.0.1:9/hook" && sealed.signed, "\(sealed)")
            let row = try await onOwnThread { () throws -> String in
                let connection = try PostgresConnection(connectionString: it.database)
                return try connection.query("SELECT row_to_json(h)::text AS row FROM notify.hooks h WHERE id = \(old)")
                    .map { try $0.decode("row", as: String.self) }.joined()
            }
            #expect(!row.contains("0ldpa55") && !row.contains("old-s3cret") && row.contains("url_sealed"), "\(row)")
            #expect(await notifier.stop())
        }
    }
}
