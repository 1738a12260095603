import HTTPTypes
import RampartAPI
import RampartBus
import RampartLinks
import RampartProto
import RampartRPC

/// A download request refused: what the client is answered (a short text, never object data), what is
/// logged, and what is audited.
struct DownloadRefusal: Error, Equatable, Sendable {
    /// `refused`: the request itself is wrong (403, 404, 405, 416); `unavailable`: a lookup could not be
    /// made right now (503 with Retry-After).
    enum Kind: Equatable, Sendable { case refused, unavailable }

    var kind: Kind = .refused
    var status: HTTPResponse.Status
    /// The response body (one line).
    var text: String
    /// Why, for the log.
    var reason: String
    /// The audit record's outcome and message; nil for requests that are not downloads (another path,
    /// another method), which are not audited.
    var audit: Audit?
    /// Headers the refusal carries (`Allow`, `Content-Range`, …).
    var headers = HTTPFields()

    struct Audit: Equatable, Sendable {
        var code: Rampart_Bus_V1_StatusCode
        var message: String
    }

    static func notFound(_ reason: String) -> DownloadRefusal {
        DownloadRefusal(status: .notFound, text: "not found", reason: reason, audit: Audit(code: .notFound, message: reason))
    }

    static func unavailable(_ reason: String, audit message: String) -> DownloadRefusal {
        DownloadRefusal(
            kind: .unavailable, status: .serviceUnavailable, text: "service unavailable, retry later", reason: reason,
            audit: Audit(code: .unavailable, message: message))
    }
}

/// What to send for a download that passed every check.
struct DownloadPlan: Equatable, Sendable {
    var status: HTTPResponse.Status
    /// The object's bytes to send (the whole object for 200).
    var range: Range<UInt64>
    /// "full" or "FIRST-LAST", for the log, the audit record and the download event.
    var rangeText: String
    var headers: HTTPFields
}

/// Every decision of a signed-link download (L2), apart from its I/O: the request's path and method,
/// the link check's answer, the object the link names, and the range to send. `DownloadResponder` does
/// the lookups in this order and applies what these return; each step is pure and unit tested.
enum DownloadDecision {
    /// Only GET and HEAD of `/v1/backups/…` are downloads; anything else is refused unaudited.
    static func admit(path: String, method: HTTPRequest.Method) -> DownloadRefusal? {
        guard path.hasPrefix(LinksAPI.downloadPathPrefix) else {
            return DownloadRefusal(status: .notFound, text: "not found", reason: "no such path")
        }
        guard method == .get || method == .head else {
            var refusal = DownloadRefusal(status: .methodNotAllowed, text: "method not allowed", reason: "method not allowed")
            refusal.headers[.allow] = "GET, HEAD"
            return refusal
        }
        return nil
    }

    /// The refusal for a link check that threw `error` (never a `CancellationError`: that ends the request).
    static func linkFailed(_ error: any Error) -> DownloadRefusal {
        guard let error = error as? RPCError else {
            return .unavailable("link check failed: \(error)", audit: "the link could not be checked")
        }
        switch error.code {
        case .permissionDenied:
            let reason = DownloadResponder.printable(error.message, limit: 200)
            return DownloadRefusal(
                status: .forbidden, text: reason.isEmpty ? "forbidden" : "forbidden: \(reason)",
                reason: reason.isEmpty ? "refused" : reason,
                audit: .init(code: .permissionDenied, message: reason.isEmpty ? "refused" : reason))
        case .notFound:
            return .notFound("backup gone: \(DownloadResponder.printable(error.message, limit: 200))")
        default:
            return .unavailable("link check failed: \(error)", audit: "the link could not be checked")
        }
    }

    /// The object the verified `link` names, as storage has it (`info`; nil: not in storage): served only
    /// when it is the very content the link was signed for.
    static func object(_ info: Rampart_Storage_V1_ObjectInfo?, for link: Rampart_Links_V1_VerifyLinkResponse)
        -> Result<Rampart_Storage_V1_ObjectInfo, DownloadRefusal>
    {
        guard let info else { return .failure(.notFound("the link's object is not in storage")) }
        guard info.fileName == link.fileName else {
            return .failure(.notFound("the object's file name differs from the link's"))
        }
        guard link.size == 0 || link.size == info.size, link.sha256.isEmpty || link.sha256.lowercased() == info.objectID
        else { return .failure(.notFound("the link describes other content than the object")) }
        return .success(info)
    }

    /// The status, headers and byte range for `info`, from the request's `Range` and `If-Range` headers
    /// (GET only: a HEAD is always answered as the whole object), or 416.
    static func plan(
        method: HTTPRequest.Method, ranges: [String], ifRange: String?, info: Rampart_Storage_V1_ObjectInfo
    ) -> Result<DownloadPlan, DownloadRefusal> {
        let etag = "\"\(info.objectID)\""
        let decision: RangeDecision =
            method == .head
            ? .full  // Range is defined for GET only (RFC 9110 §14.2).
            : RangeDecision.decide(ranges: ranges, ifRange: ifRange, size: info.size, etag: etag)
        var headers = HTTPFields()
        headers[.contentType] = info.contentType.isEmpty ? "application/octet-stream" : info.contentType
        headers[.eTag] = etag
        // The whole file's SHA-256 (RFC 9530), on full and partial answers alike, before any byte of the
        // body: a downloader checks what it got without asking anything else (docs/links.md). The ETag
        // is the same hash in hex.
        if let digest = DownloadResponder.reprDigest(objectId: info.objectID) { headers[DownloadResponder.reprDigestField] = digest }
        headers[.contentDisposition] = DownloadResponder.contentDisposition(fileName: info.fileName)
        headers[.acceptRanges] = "bytes"
        headers[.cacheControl] = "no-store"
        switch decision {
        case .full:
            headers[.contentLength] = "\(info.size)"
            return .success(DownloadPlan(status: .ok, range: 0..<info.size, rangeText: "full", headers: headers))
        case .partial(let bytes):
            headers[.contentRange] = "bytes \(bytes.lowerBound)-\(bytes.upperBound)/\(info.size)"
            headers[.contentLength] = "\(bytes.upperBound + 1 - bytes.lowerBound)"
            return .success(
                DownloadPlan(
                    status: .partialContent, range: bytes.lowerBound..<(bytes.upperBound + 1),
                    rangeText: "\(bytes.lowerBound)-\(bytes.upperBound)", headers: headers))
        case .unsatisfiable:
            var refusal = DownloadRefusal(
                status: .rangeNotSatisfiable, text: "range not satisfiable", reason: "range not satisfiable",
                audit: .init(code: .outOfRange, message: "range not satisfiable"))
            refusal.headers[.contentRange] = "bytes */\(info.size)"
            refusal.headers[.acceptRanges] = "bytes"
            refusal.headers[.eTag] = etag
            return .failure(refusal)
        }
    }
}
