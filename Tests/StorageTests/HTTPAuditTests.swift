import Foundation
import RampartAudit
import RampartProto
import RampartTesting
import StorageHTTP
import Testing

@testable import StorageService

/// P9: storage appends an audit record for every request for a download path, served or
/// refused; the signature never lands in it.
@Suite("P9: signed-link downloads are audited (curl against the real server)")
struct HTTPAuditTests {
    static let fileName = HTTPDownloadTests.fileName
    static let path = HTTPDownloadTests.path

    @Test("P9: a served download is audited OK with the link's key, the backup, the bytes and the remote")
    func served() async throws {
        let content = testBytes(300_000, seed: 61)
        let (storage, verifier, info) = try await HTTPDownloadTests.setUp(content)
        defer { Task { await storage.close() } }
        let audit = RecordingAuditSink()
        try await withDownloadServer(storage, verifier: verifier, audit: audit) { base, _ in
            let got = try await curl(base + Self.path + "?expires=1&kid=kclaimed&sig=good")
            #expect(got.status == 200 && got.body == content)
            let record = try #require(try await audit.wait(for: 1).first)
            #expect(record.outcome == .ok)
            #expect(record.callerName == "link")
            // The verified link's key, not the one the query claims.
            #expect(record.callerKey == "link:k0a1b2c3")
            #expect(record.service == "storage")
            #expect(record.method == "GET " + Self.path)
            #expect(record.subject == "b-1")
            #expect(record.details["bytes"] == "\(content.count)")
            #expect(record.details["range"] == "full")
            #expect(record.details["http-status"] == "200")
            #expect(record.details["verified"] == "true")
            #expect(record.details["object"] == info.objectID)
            #expect(record.details["remote"]?.hasPrefix("127.0.0.1:") == true)

            let partial = try await curl(base + Self.path + "?sig=good", ["-H", "Range: bytes=10-19"])
            #expect(partial.status == 206)
            let second = try await audit.wait(for: 2)[1]
            #expect(second.outcome == .ok && second.details["range"] == "10-19" && second.details["bytes"] == "10")
        }
    }

    @Test("P9: a refused link is audited PERMISSION_DENIED with the claimed key and backup; gone is NOT_FOUND")
    func refused() async throws {
        let (storage, verifier, _) = try await HTTPDownloadTests.setUp(testBytes(5000, seed: 62))
        defer { Task { await storage.close() } }
        let audit = RecordingAuditSink()
        try await withDownloadServer(storage, verifier: verifier, audit: audit) { base, _ in
            let forged = try await curl(base + Self.path + "?expires=9&kid=kforged1&nonce=n&sig=forged")
            #expect(forged.status == 403)
            let gone = try await curl(base + "/v1/backups/b-9/\(Self.fileName)?sig=good")
            #expect(gone.status == 404)
            let down = try await curl(base + Self.path + "?sig=down")
            #expect(down.status == 503)
            let records = try await audit.wait(for: 3)
            #expect(records.count == 3)

            let denied = records[0]
            #expect(denied.outcome == .permissionDenied)
            #expect(denied.callerKey == "link:kforged1" && denied.callerName == "link")
            #expect(denied.subject == "b-1")
            #expect(denied.method == "GET " + Self.path, "the query (and its signature) stays out of the log")
            #expect(denied.message == "bad signature")
            #expect(denied.details["verified"] == "false" && denied.details["http-status"] == "403")
            #expect(denied.details["bytes"] == "0")

            #expect(records[1].outcome == .notFound && records[1].subject == "b-9" && records[1].callerKey == "")
            #expect(records[2].outcome == .unavailable && records[2].details["http-status"] == "503")
        }
    }

    @Test("P9: HEAD is audited as HEAD; other paths and other methods are not downloads and are not audited")
    func whatIsAudited() async throws {
        let (storage, verifier, _) = try await HTTPDownloadTests.setUp(testBytes(5000, seed: 63))
        defer { Task { await storage.close() } }
        let audit = RecordingAuditSink()
        try await withDownloadServer(storage, verifier: verifier, audit: audit) { base, _ async throws in
            #expect(try await curl(base + "/v1/other?sig=good").status == 404)
            #expect(try await curl(base + Self.path + "?sig=good", ["-X", "POST", "-d", "x"]).status == 405)
            #expect(try await curl(base + Self.path + "?sig=good", ["-I"]).status == 200)
        }
        // The server has shut down gracefully: every request it took has been handled to its end, audit record
        // included, so none can come later.
        let records = audit.records
        #expect(records.count == 1, "\(records)")
        #expect(records.first?.method == "HEAD " + Self.path && records.first?.outcome == .ok)
    }
}
