import Foundation
import NotifierService
import RampartProto
import Testing

@Suite struct BackoffTests {
    @Test("P15: retries wait 1, 2, 4, 8 … seconds after each failure, never more than the maximum")
    func schedule() {
        let backoff = Backoff(base: .seconds(1), maximum: .seconds(60))
        #expect((1...8).map { backoff.delay(afterFailures: $0) } == [1, 2, 4, 8, 16, 32, 60, 60].map { Duration.seconds($0) })
        #expect(backoff.delay(afterFailures: 0) == .zero)
        #expect(backoff.delay(afterFailures: 10_000) == .seconds(60))
        let fast = Backoff(base: .milliseconds(100), maximum: .milliseconds(250))
        #expect((1...4).map { fast.delay(afterFailures: $0) } == [100, 200, 250, 250].map { Duration.milliseconds($0) })
    }
}

@Suite struct TopicFilterTests {
    @Test("P15: a hook's topic is exact, or a prefix ending in '.' or '*'")
    func matching() {
        #expect(TopicFilter.matches("backup.job.failed", ["backup.job.failed"]))
        #expect(!TopicFilter.matches("backup.job.failed.more", ["backup.job.failed"]))
        #expect(!TopicFilter.matches("backup.job.succeeded", ["backup.job.failed", "backup.device.stale"]))
        #expect(TopicFilter.matches("backup.device.stale", ["backup.job.failed", "backup.device.stale"]))
        #expect(TopicFilter.matches("backup.job.queued", ["backup.*"]))
        #expect(TopicFilter.matches("backup.job.queued", ["backup."]))
        #expect(!TopicFilter.matches("backupx.job", ["backup."]))
        #expect(TopicFilter.matches("anything.at.all", ["*"]))
        #expect(!TopicFilter.matches("backup.job.failed", []))
    }

    @Test("P15: topics are dotted lower-case words; the journal is asked for their common prefix")
    func validation() {
        for good in ["backup.job.failed", "backup.*", "backup.", "*", "inventory.ha_pair.created", "restore.ha.sync-resumed"] {
            #expect(TopicFilter.problem(good) == nil, "\(good)")
        }
        for bad in ["", "Backup.job", "backup..job", ".backup", "backup job", "backup.**", "bäckup"] {
            #expect(TopicFilter.problem(bad) != nil, "\(bad)")
        }
        #expect(TopicFilter.commonPrefix(["backup.job.failed", "backup.device.stale"]) == "backup.")
        #expect(TopicFilter.commonPrefix(["backup.*"]) == "backup.")
        #expect(TopicFilter.commonPrefix(["backup.job.failed", "inventory.device.registered"]) == "")
        #expect(TopicFilter.commonPrefix(["*"]) == "")
    }
}

@Suite struct URLMaskingTests {
    @Test("P15: user info and query values of a hook URL are never shown")
    func masking() {
        #expect(URLMasking.masked("https://hooks.example.net/rampart") == "https://hooks.example.net/rampart")
        #expect(URLMasking.masked("https://user:s3cret@hooks.example.net:8443/x") == "https://***@hooks.example.net:8443/x")
        #expect(URLMasking.masked("https://token@hooks.example.net/x") == "https://***@hooks.example.net/x")
        #expect(
            URLMasking.masked("https://chat.example.net/hook?token=abc123&channel=ops")
                == "https://chat.example.net/hook?token=***&channel=***")
        #expect(URLMasking.masked("http://u:p@h/x?k=v#frag") == "http://***@h/x?k=***")
        for url in ["https://user:s3cret@h/x?token=abc123", "not a url s3cret", "http://[bad s3cret"] {
            #expect(!URLMasking.masked(url).contains("s3cret"), "\(URLMasking.masked(url))")
            #expect(!URLMasking.masked(url).contains("abc123"))
        }
    }

    @Test("P15: a token in a hook URL's path (chat webhooks, a UUID) is never shown; names in the path stay")
    func pathTokens() {
        #expect(
            URLMasking.masked("https://hooks.slack.com/services/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")
                == "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/***")
        #expect(
            URLMasking.masked("https://discord.example/api/webhooks/112233445566778899/aBcD-eFgH_1234567890xyzXYZ")
                == "https://discord.example/api/webhooks/***/***")
        #expect(
            URLMasking.masked("https://webhook.site/6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b")
                == "https://webhook.site/***")
        #expect(URLMasking.masked("https://hooks.example.net/hooks/backup-events-receiver/") == "https://hooks.example.net/hooks/backup-events-receiver/")
        #expect(URLMasking.masked("https://h.example/a%2Fb%2Fc%2Fd%2Fe%2F") == "https://h.example/***")
    }

    @Test("P15: a hook URL is http or https with a host")
    func validation() {
        #expect(URLMasking.problem("https://hooks.example.net/x") == nil)
        #expect(URLMasking.problem("http://127.0.0.1:9000/") == nil)
        #expect(URLMasking.problem("ftp://hooks.example.net/x") != nil)
        #expect(URLMasking.problem("hooks.example.net/x") != nil)
        #expect(URLMasking.problem("https://h/x#frag") != nil)
        #expect(URLMasking.problem("https://user:pw@h/x")?.contains("pw") != true)
    }
}

@Suite struct WebhookSignatureTests {
    @Test("P15: X-Rampart-Signature is sha256= and the HMAC-SHA256 of the body, hex (RFC 4231 case 2)")
    func signature() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let value = WebhookSignature.value(body: Data("what do ya want for nothing?".utf8), secret: "Jefe")
        #expect(value == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(WebhookSignature.verify(header: value, body: Data("what do ya want for nothing?".utf8), secret: "Jefe"))
        #expect(!WebhookSignature.verify(header: value, body: Data("what do ya want for nothing!".utf8), secret: "Jefe"))
        #expect(!WebhookSignature.verify(header: value, body: Data("what do ya want for nothing?".utf8), secret: "jefe"))
        #expect(!WebhookSignature.verify(header: "sha256=zz", body: Data(), secret: "Jefe"))
    }
}

@Suite struct WebhookBodyTests {
    @Test("P15: the body is the event's facts and its message as the CLI's JSON")
    func body() throws {
        var device = Rampart_Inventory_V1_Device()
        device.id = "d-1"
        device.name = "fw-edge"
        var event = Rampart_Bus_V1_Event()
        event.seq = 42
        event.topic = "inventory.device.registered"
        event.subject = "d-1"
        event.source = "inventory"
        event.timeUnixMs = 1_796_000_000_123
        event.attributes = ["device_name": "fw-edge"]
        event.dataType = Rampart_Inventory_V1_Device.protoMessageName
        event.data = try device.serializedData()
        let object = try #require(try JSONSerialization.jsonObject(with: WebhookBody.json(event)) as? [String: Any])
        #expect(object["topic"] as? String == "inventory.device.registered")
        #expect((object["seq"] as? NSNumber)?.uint64Value == 42)
        #expect(object["subject"] as? String == "d-1")
        #expect(object["time"] as? String == "2026-11-30T00:53:20.123Z")
        #expect(object["attributes"] as? [String: String] == ["device_name": "fw-edge"])
        let message = try #require(object["message"] as? [String: Any])
        #expect(message["name"] as? String == "fw-edge")
        #expect(message["connected"] as? Bool == false)  // every field, as `--output json` writes it

        var bare = event
        bare.dataType = ""
        bare.data = Data()
        let plain = try #require(try JSONSerialization.jsonObject(with: WebhookBody.json(bare)) as? [String: Any])
        #expect(plain["message"] is NSNull)
    }
}
