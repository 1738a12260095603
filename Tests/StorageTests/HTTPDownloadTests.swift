import Crypto
import Foundation
import RampartBus
import RampartCrypto
import RampartProto
import RampartTesting
import StorageHTTP
import Testing

@testable import StorageService

/// The real HTTP server over a real storage (PostgreSQL, sealed files), fetched with the system curl.
@Suite("L2: signed-link HTTP downloads from storage (curl against the real server)")
struct HTTPDownloadTests {
    static let fileName = "fw-1_primary_20260101.tar"
    static let path = "/v1/backups/b-1/\(fileName)"

    /// A storage holding `content` as backup "b-1" and a verifier that knows its link.
    static func setUp(_ content: Data, frameSize: Int = ObjectHeader.defaultFrameSize) async throws -> (
        StorageHarness, TestLinkVerifier, Rampart_Storage_V1_ObjectInfo
    ) {
        let storage = try StorageHarness.make(frameSize: frameSize)
        let info = try await storage.store(content, name: fileName)
        let verifier = TestLinkVerifier()
        verifier.register(path: path, backupId: "b-1", info: info)
        return (storage, verifier, info)
    }

    @Test("L2: a full download is the object's bytes with its headers and a storage.download event")
    func fullDownload() async throws {
        let content = testBytes(5 * (1 << 20) + 12_345, seed: 21)
        let (storage, verifier, info) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let got = try await curl(base + Self.path + "?sig=good&exp=1")
            #expect(got.exitCode == 0, "\(got.stderr)")
            #expect(got.status == 200)
            #expect(got.body == content)
            #expect(sha256Hex(got.body) == info.objectID)
            #expect(got.header("Content-Length") == "\(content.count)")
            #expect(got.header("Content-Type") == "application/x-tar")
            #expect(got.header("ETag") == "\"\(info.objectID)\"")
            // L2: the whole file's SHA-256 before the body, so a downloader can check what it got.
            #expect(got.header("Repr-Digest") == "sha-256=:\(Data(SHA256.hash(data: content)).base64EncodedString()):")
            #expect(got.header("Content-Disposition") == "attachment; filename=\"\(Self.fileName)\"")
            #expect(got.header("Accept-Ranges") == "bytes")
            #expect(got.header("Cache-Control") == "no-store")
            #expect(got.header("Content-Range") == nil)
            let events = try await storage.waitForDownloadEvents(1)
            #expect(events.count == 1)
            let event = try #require(events.first)
            #expect(event["backup_id"] == "b-1")
            #expect(event["object_id"] == info.objectID)
            #expect(event["file_name"] == Self.fileName)
            #expect(event["bytes"] == "\(content.count)")
            #expect(event["range"] == "full")
            #expect(event["key_id"] == "k0a1b2c3")
            #expect(event["nonce"] == "nonce-b-1")
            #expect(event["status"] == "200")
            #expect(event["remote"]?.hasPrefix("127.0.0.1:") == true)
            #expect(event["device_id"] == "device-1")
            // The verifier was asked with the raw request, method included.
            #expect(verifier.asked.last?.method == "GET")
            #expect(verifier.asked.last?.path == Self.path)
            #expect(verifier.asked.last?.query == "sig=good&exp=1")
        }
    }

    @Test("L2: Range gives 206 with Content-Range; a resumed download (curl -C -) reassembles the same bytes")
    func rangesAndResume() async throws {
        let content = testBytes(3 * (1 << 20) + 777, seed: 22)
        let (storage, verifier, info) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let link = base + Self.path + "?sig=good"
            // A closed range across frame and batch boundaries.
            let middle = try await curl(link, ["-H", "Range: bytes=65530-1100000"])
            #expect(middle.status == 206)
            #expect(middle.body == content.subdata(in: 65530..<1_100_001))
            #expect(middle.header("Content-Range") == "bytes 65530-1100000/\(content.count)")
            #expect(middle.header("Content-Length") == "\(1_100_001 - 65530)")
            #expect(middle.header("ETag") == "\"\(info.objectID)\"")
            #expect(middle.header("Repr-Digest") == "sha-256=:\(Data(SHA256.hash(data: content)).base64EncodedString()):",
                    "a part carries the digest of the whole file")
            // Open-ended and suffix ranges.
            let tail = try await curl(link, ["-H", "Range: bytes=3000000-"])
            #expect(tail.status == 206 && tail.body == content.subdata(in: 3_000_000..<content.count))
            let suffix = try await curl(link, ["-H", "Range: bytes=-100"])
            #expect(suffix.status == 206 && suffix.body == content.suffix(100))
            #expect(
                suffix.header("Content-Range") == "bytes \(content.count - 100)-\(content.count - 1)/\(content.count)")
            // A first byte past the end is 416 with the size, and no data.
            let past = try await curl(link, ["-H", "Range: bytes=\(content.count)-"])
            #expect(past.status == 416)
            #expect(past.header("Content-Range") == "bytes */\(content.count)")
            #expect(!past.body.contains(content.prefix(16)))
            // Resume: a partial file completed by curl -C - (which sends Range: bytes=N-).
            let partial = NSTemporaryDirectory() + "rampart-resume-\(UUID().uuidString.prefix(8))"
            defer { unlink(partial) }
            try content.prefix(1_234_567).write(to: URL(fileURLWithPath: partial))
            let resumed = try await curl(link, ["-C", "-"], output: partial)
            #expect(resumed.status == 206, "\(resumed.stderr)")
            let whole = try Data(contentsOf: URL(fileURLWithPath: partial))
            #expect(whole == content)
            #expect(sha256Hex(whole) == info.objectID)
            // Multiple ranges and a malformed Range are ignored: 200 with everything.
            let multiple = try await curl(link, ["-H", "Range: bytes=0-1,5-6"])
            #expect(multiple.status == 200 && multiple.body == content)
            let malformed = try await curl(link, ["-H", "Range: bytes=9-3"])
            #expect(malformed.status == 200 && malformed.body == content)
            let events = try await storage.waitForDownloadEvents(6)
            #expect(
                events.map { $0["range"] } == [
                    "65530-1100000", "3000000-\(content.count - 1)", "\(content.count - 100)-\(content.count - 1)",
                    "1234567-\(content.count - 1)", "full", "full",
                ])
            #expect(events.map { $0["status"] } == ["206", "206", "206", "206", "200", "200"])
            #expect(events[0]["bytes"] == "\(1_100_001 - 65530)")
        }
    }

    @Test("L2: If-Range with another ETag serves 200 with everything; with the same ETag the range")
    func ifRange() async throws {
        let content = testBytes(300_000, seed: 23)
        let (storage, verifier, info) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let link = base + Self.path + "?sig=good"
            let other = try await curl(
                link, ["-H", "Range: bytes=100-199", "-H", "If-Range: \"\(String(repeating: "0", count: 64))\""])
            #expect(other.status == 200)
            #expect(other.body == content)
            let same = try await curl(link, ["-H", "Range: bytes=100-199", "-H", "If-Range: \"\(info.objectID)\""])
            #expect(same.status == 206)
            #expect(same.body == content.subdata(in: 100..<200))
        }
    }

    @Test("L2: a refused link is 403 with the reason and no data, an unknown backup or object 404, no events")
    func refusals() async throws {
        let content = testBytes(200_000, seed: 24)
        let (storage, verifier, info) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        // A link whose object storage does not hold, and one whose file name differs from the object's.
        var missing = info
        missing.objectID = String(repeating: "ab", count: 32)
        verifier.register(path: "/v1/backups/b-2/\(Self.fileName)", backupId: "b-2", info: missing)
        verifier.register(path: "/v1/backups/b-3/other.tar", backupId: "b-3", info: info, fileName: "other.tar")
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let expired = try await curl(base + Self.path + "?sig=expired")
            #expect(expired.status == 403)
            #expect(String(decoding: expired.body, as: UTF8.self) == "forbidden: link expired\n")
            let tampered = try await curl(base + Self.path + "?sig=forged")
            #expect(tampered.status == 403)
            #expect(String(decoding: tampered.body, as: UTF8.self) == "forbidden: bad signature\n")
            #expect(tampered.header("ETag") == nil && tampered.header("Content-Disposition") == nil)
            let gone = try await curl(base + "/v1/backups/b-9/\(Self.fileName)?sig=good")
            #expect(gone.status == 404)
            #expect(String(decoding: gone.body, as: UTF8.self) == "not found\n")
            let unknownObject = try await curl(base + "/v1/backups/b-2/\(Self.fileName)?sig=good")
            #expect(unknownObject.status == 404)
            let otherName = try await curl(base + "/v1/backups/b-3/other.tar?sig=good")
            #expect(otherName.status == 404)
            let elsewhere = try await curl(base + "/v1/other?sig=good")
            #expect(elsewhere.status == 404)
            let root = try await curl(base + "/")
            #expect(root.status == 404)
            for response in [expired, tampered, gone, unknownObject, otherName, elsewhere, root] {
                #expect(response.body.count < 64)
            }
            // Paths outside /v1/backups/ never reach the verifier.
            #expect(verifier.asked.allSatisfy { $0.path.hasPrefix("/v1/backups/") })
        }
        #expect(try storage.downloadEvents().isEmpty)
    }

    @Test("L2: the raw percent-encoded path and raw query reach the verifier undecoded")
    func rawRequest() async throws {
        let content = testBytes(1000, seed: 25)
        let (storage, verifier, info) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        let raw = "/v1/backups/b%2D4/fw-1%5Fprimary%5F20260101.tar"
        verifier.register(path: raw, backupId: "b-4", info: info)
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let got = try await curl(base + raw + "?sig=good&x=a%2Bb%20c&y")
            #expect(got.status == 200)
            #expect(got.body == content)
            #expect(verifier.asked.last?.path == raw)
            #expect(verifier.asked.last?.query == "sig=good&x=a%2Bb%20c&y")
        }
    }

    @Test("L2: methods other than GET and HEAD are 405 with Allow; HEAD gives the headers without a body")
    func methods() async throws {
        let content = testBytes(150_000, seed: 26)
        let (storage, verifier, info) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let link = base + Self.path + "?sig=good"
            for method in ["POST", "PUT", "DELETE", "PATCH"] {
                let got = try await curl(link, ["-X", method, "-d", "x"])
                #expect(got.status == 405, "\(method)")
                #expect(got.header("Allow") == "GET, HEAD")
            }
            let head = try await curl(link, ["-I"])
            #expect(head.exitCode == 0, "\(head.stderr)")
            #expect(head.status == 200)
            // With -I curl writes the response head to the output: nothing may follow it.
            let text = String(decoding: head.body, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(text.hasSuffix("\r\n\r\n") && text.components(separatedBy: "\r\n\r\n").count == 2)
            #expect(head.header("Content-Length") == "\(content.count)")
            #expect(head.header("ETag") == "\"\(info.objectID)\"")
            #expect(head.header("Content-Disposition") == "attachment; filename=\"\(Self.fileName)\"")
            #expect(head.header("Accept-Ranges") == "bytes")
            #expect(verifier.asked.last?.method == "HEAD")
        }
        // Neither the refused methods nor HEAD are downloads.
        #expect(try storage.downloadEvents().isEmpty)
    }

    @Test("L2: an empty object downloads as 0 bytes; any Range on it is 416")
    func emptyObject() async throws {
        let (storage, verifier, info) = try await Self.setUp(Data())
        defer { Task { await storage.close() } }
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let got = try await curl(base + Self.path + "?sig=good")
            #expect(got.status == 200 && got.body.isEmpty && got.exitCode == 0)
            #expect(got.header("ETag") == "\"\(info.objectID)\"")
            let range = try await curl(base + Self.path + "?sig=good", ["-H", "Range: bytes=0-"])
            #expect(range.status == 416)
            #expect(range.header("Content-Range") == "bytes */0")
        }
    }

    @Test("L2: when the link cannot be checked (signer down, bus unreachable) the answer is 503 with Retry-After")
    func unavailable() async throws {
        let content = testBytes(10_000, seed: 27)
        let (storage, verifier, _) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let got = try await curl(base + Self.path + "?sig=down")
            #expect(got.status == 503)
            #expect(got.header("Retry-After") == "5")
            #expect(got.body.count < 64)
        }
        // The production verifier with no bus behind it: its short deadline ends the wait.
        let client = BusClient(endpoint: "tcp://127.0.0.1:\(FreePort.next())", security: .plain, caller: "storage-tests")
        defer { client.close() }
        let busVerifier = BusLinkVerifier(client: client, timeout: .milliseconds(300))
        try await withDownloadServer(storage, verifier: busVerifier) { base, _ in
            let clock = ContinuousClock()
            let started = clock.now
            let got = try await curl(base + Self.path + "?sig=good")
            #expect(got.status == 503)
            #expect(got.header("Retry-After") != nil)
            // The verifier's deadline ends the wait (a liveness bound far above the 0.3 s deadline, not a speed check).
            #expect(clock.now - started < .seconds(20))
        }
        #expect(try storage.downloadEvents().isEmpty)
    }

    @Test("L2: a frame damaged on disk cuts the transfer off before its bytes; the event says incomplete")
    func damagedFrame() async throws {
        let content = testBytes(4 * (1 << 20), seed: 28)
        let (storage, verifier, info) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        // Flip one byte in frame 40 (in the third 1 MiB batch).
        let path = storage.service.configuration.objectPath(info.objectID)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        let offset = UInt64(ObjectHeader.size + 40 * (65536 + 16) + 100)
        try handle.seek(toOffset: offset)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data([byte ^ 0x01]))
        try handle.close()
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let got = try await curl(base + Self.path + "?sig=good")
            #expect(got.exitCode == 18, "curl: transfer closed with bytes remaining (docs/links.md)")
            #expect(got.status == 200)
            #expect(got.body.count < 40 * 65536)
            #expect(got.body == content.prefix(got.body.count))
            // A range that avoids the frame is still served (frames authenticate on their own).
            let before = try await curl(base + Self.path + "?sig=good", ["-H", "Range: bytes=0-99999"])
            #expect(before.status == 206 && before.body == content.prefix(100_000))
            let events = try await storage.waitForDownloadEvents(2)
            #expect(events.first?["status"] == "incomplete")
            #expect(events.first?["bytes"] == "\(got.body.count)")
        }
    }

    @Test("L2: content whose SHA-256 is not the object id is never sent whole (the last batch is withheld)")
    func wrongContent() async throws {
        let content = testBytes(2 * (1 << 20) + 5000, seed: 29)
        let (storage, verifier, info) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        // Replace the sealed file by other content of the same size, sealed under the right key: every
        // frame authenticates, only the whole hash can tell.
        var other = content
        other[other.count - 1] ^= 0xff
        let sealed = try StreamSealer.sealAll(other, masterKey: storage.service.masterKey)
        try sealed.write(to: URL(fileURLWithPath: storage.service.configuration.objectPath(info.objectID)))
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let got = try await curl(base + Self.path + "?sig=good")
            #expect(got.exitCode != 0)
            #expect(got.body.count < content.count)
            #expect(got.body.count <= 2 * (1 << 20))
            let events = try await storage.waitForDownloadEvents(1)
            #expect(events.first?["status"] == "incomplete")
        }
    }

    @Test("L2: a client that goes away mid-transfer is recorded as incomplete with the bytes sent")
    func clientAbort() async throws {
        let content = testBytes(24 * (1 << 20), seed: 30)
        let (storage, verifier, _) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        try await withDownloadServer(storage, verifier: verifier) { base, _ in
            let got = try await curl(base + Self.path + "?sig=good", ["--limit-rate", "1M", "--max-time", "1"])
            #expect(got.exitCode == 28)  // curl: operation timed out
            let events = try await storage.waitForDownloadEvents(1)
            let event = try #require(events.first)
            #expect(event["status"] == "incomplete")
            #expect((UInt64(event["bytes"] ?? "") ?? UInt64.max) < UInt64(content.count))
        }
    }

    @Test("L2: graceful shutdown lets a download drain, then cuts it off after the drain timeout")
    func shutdownDrains() async throws {
        let content = testBytes(24 * (1 << 20), seed: 31)
        let (storage, verifier, _) = try await Self.setUp(content)
        defer { Task { await storage.close() } }
        try await withDownloadServer(storage, verifier: verifier, drainTimeout: .milliseconds(500)) { base, group in
            // At 2 MiB/s the 24 MiB would arrive whole within curl's 20 s: a short body proves the cut-off.
            let body = NSTemporaryDirectory() + "rampart-drain-\(UUID().uuidString.prefix(8)).body"
            defer { unlink(body) }
            async let slow = curl(base + Self.path + "?sig=good", ["--limit-rate", "2M", "--max-time", "20"], output: body)
            // The shutdown comes while the body is flowing: once curl has written some of it.
            for _ in 0..<2000 {
                let written = (try? FileManager.default.attributesOfItem(atPath: body)[.size] as? Int) ?? 0
                if written > 0 { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            await group.triggerGracefulShutdown()
            let got = try await slow
            #expect(got.exitCode != 0)
            #expect(got.body.count < content.count)
        }
        let events = try await storage.waitForDownloadEvents(1)
        #expect(events.first?["status"] == "incomplete")
    }
}
