import HTTPTypes
import RampartBus
import RampartProto
import RampartRPC
import Testing

@testable import StorageHTTP

/// The download's decisions, without a server, a storage folder or a link-signer (L2, P9).
@Suite("L2: a signed-link download's decisions (pure)")
struct DownloadDecisionTests {
    static let objectId = String(repeating: "ab", count: 32)

    static func info(size: UInt64 = 1000, fileName: String = "fw-1_20261207T101500Z.tar") -> Rampart_Storage_V1_ObjectInfo {
        var info = Rampart_Storage_V1_ObjectInfo()
        info.objectID = objectId
        info.size = size
        info.fileName = fileName
        return info
    }

    static func link(size: UInt64 = 1000, sha256: String = objectId, fileName: String = "fw-1_20261207T101500Z.tar")
        -> Rampart_Links_V1_VerifyLinkResponse
    {
        var link = Rampart_Links_V1_VerifyLinkResponse()
        link.objectID = objectId
        link.size = size
        link.sha256 = sha256
        link.fileName = fileName
        return link
    }

    @Test("L2: only GET and HEAD of /v1/backups/… are downloads; other paths and methods are refused and not audited")
    func admit() {
        #expect(DownloadDecision.admit(path: "/v1/backups/x/y.tar", method: .get) == nil)
        #expect(DownloadDecision.admit(path: "/v1/backups/x/y.tar", method: .head) == nil)
        let elsewhere = DownloadDecision.admit(path: "/metrics", method: .get)
        #expect(elsewhere?.status == .notFound && elsewhere?.audit == nil)
        let post = DownloadDecision.admit(path: "/v1/backups/x/y.tar", method: .post)
        #expect(post?.status == .methodNotAllowed && post?.headers[.allow] == "GET, HEAD" && post?.audit == nil)
    }

    @Test("L2, P9: a refused link is 403 with its reason, a gone backup 404, anything else 503 (retry): each audited")
    func linkFailures() {
        let forbidden = DownloadDecision.linkFailed(RPCError(.permissionDenied, "link expired"))
        #expect(forbidden.status == .forbidden && forbidden.text == "forbidden: link expired")
        #expect(forbidden.audit == .init(code: .permissionDenied, message: "link expired"))
        let bare = DownloadDecision.linkFailed(RPCError(.permissionDenied, ""))
        #expect(bare.text == "forbidden" && bare.audit?.message == "refused")
        let gone = DownloadDecision.linkFailed(RPCError(.notFound, "no backup b-1"))
        #expect(gone.status == .notFound && gone.audit?.code == .notFound && gone.reason == "backup gone: no backup b-1")
        let down = DownloadDecision.linkFailed(RPCError(.unavailable, "no instance of link-signer"))
        #expect(down.kind == .unavailable && down.status == .serviceUnavailable && down.audit?.code == .unavailable)
        struct Broken: Error {}
        #expect(DownloadDecision.linkFailed(Broken()).kind == .unavailable)
        let hostile = DownloadDecision.linkFailed(RPCError(.permissionDenied, "bad\u{7}\nname"))
        #expect(hostile.text == "forbidden: bad??name", "never echoes control characters")
    }

    @Test("L2: the object is served only when it is the content the link was signed for")
    func objectMatchesLink() throws {
        #expect(try DownloadDecision.object(Self.info(), for: Self.link()).get() == Self.info())
        let missing = DownloadDecision.object(nil, for: Self.link())
        #expect(throws: DownloadRefusal.notFound("the link's object is not in storage")) { try missing.get() }
        #expect(throws: DownloadRefusal.self) { try DownloadDecision.object(Self.info(fileName: "other.tar"), for: Self.link()).get() }
        #expect(throws: DownloadRefusal.self) { try DownloadDecision.object(Self.info(size: 999), for: Self.link()).get() }
        #expect(throws: DownloadRefusal.self) {
            try DownloadDecision.object(Self.info(), for: Self.link(sha256: String(repeating: "cd", count: 32))).get()
        }
        // A link without size or hash (older links) is matched by its object id and file name alone.
        #expect(try DownloadDecision.object(Self.info(size: 5), for: Self.link(size: 0, sha256: "")).get().size == 5)
        // The hash is compared without regard to case.
        #expect(throws: Never.self) { try DownloadDecision.object(Self.info(), for: Self.link(sha256: Self.objectId.uppercased())).get() }
    }

    @Test("L2: 200 for the whole file, 206 with Content-Range for a range, 416 for one past the end; HEAD ignores Range")
    func ranges() throws {
        let full = try DownloadDecision.plan(method: .get, ranges: [], ifRange: nil, info: Self.info()).get()
        #expect(full.status == .ok && full.range == 0..<1000 && full.rangeText == "full")
        #expect(full.headers[.contentLength] == "1000" && full.headers[.eTag] == "\"\(Self.objectId)\"")
        #expect(full.headers[DownloadResponder.reprDigestField]?.hasPrefix("sha-256=:") == true)
        #expect(full.headers[.contentDisposition] == "attachment; filename=\"fw-1_20261207T101500Z.tar\"")

        let part = try DownloadDecision.plan(method: .get, ranges: ["bytes=100-199"], ifRange: nil, info: Self.info()).get()
        #expect(part.status == .partialContent && part.range == 100..<200 && part.rangeText == "100-199")
        #expect(part.headers[.contentRange] == "bytes 100-199/1000" && part.headers[.contentLength] == "100")

        let head = try DownloadDecision.plan(method: .head, ranges: ["bytes=100-199"], ifRange: nil, info: Self.info()).get()
        #expect(head.status == .ok && head.range == 0..<1000)

        let stale = try DownloadDecision.plan(method: .get, ranges: ["bytes=100-199"], ifRange: "\"other\"", info: Self.info()).get()
        #expect(stale.status == .ok, "If-Range that does not match: the whole file")

        let past = DownloadDecision.plan(method: .get, ranges: ["bytes=5000-"], ifRange: nil, info: Self.info())
        #expect(throws: DownloadRefusal.self) { try past.get() }
        if case .failure(let refusal) = past {
            #expect(refusal.status == .rangeNotSatisfiable && refusal.headers[.contentRange] == "bytes */1000")
            #expect(refusal.audit?.code == .outOfRange)
        }
    }
}
