import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RampartAudit
import RampartBus
import RampartLinks
import RampartProto
import StorageService

/// The request context of the download server: Hummingbird's core storage plus the client's address.
struct DownloadRequestContext: Hummingbird.RequestContext {
    var coreContext: CoreRequestContextStorage
    /// "ip:port" of the client ("" when unknown).
    let remote: String

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remote = source.channel.remoteAddress.map(Self.describe) ?? ""
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress else { return "\(address)" }
        guard let port = address.port else { return ip }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// Answers every HTTP request of the download endpoint (L2): GET and HEAD on `/v1/backups/…` only; the
/// link is checked by a `LinkVerifier` before anything about the object is looked at; the object is
/// streamed decrypted, frame by frame, with one ~1 MiB batch read ahead of the one being sent. Every
/// GET or HEAD of a download path is audited (P9): served, refused, not found or failed.
struct DownloadResponder: HTTPResponder {
    typealias Context = DownloadRequestContext

    let storage: StorageService
    let verifier: any LinkVerifier
    let audit: any AuditSink

    /// How long clients are told to wait when the link cannot be checked right now.
    static let retryAfterSeconds = 5

    func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        let (path, query) = Self.split(request.head.path ?? "")
        var logger = context.logger
        logger[metadataKey: "method"] = "\(request.method.rawValue)"
        // The path holds the backup id and file name, never the signature (which is in the query).
        logger[metadataKey: "path"] = "\(Self.printable(path, limit: 300))"
        if !context.remote.isEmpty { logger[metadataKey: "remote"] = "\(context.remote)" }
        let outcome = DownloadLog(logger: logger, started: started)

        if let refusal = DownloadDecision.admit(path: path, method: request.method) {
            return outcome.answer(refusal)
        }
        let trail = DownloadAudit(
            sink: audit, method: request.method.rawValue, path: path, query: query, remote: context.remote)
        /// Audits `refusal` and answers it.
        func refuse(_ refusal: DownloadRefusal) async -> Response {
            if let record = refusal.audit {
                await trail.record(record.code, httpStatus: Int(refusal.status.code), message: record.message)
            }
            return outcome.answer(refusal)
        }

        // 1. The link.
        var check = Rampart_Links_V1_VerifyLinkRequest()
        check.method = request.method.rawValue
        check.path = path
        check.query = query
        let link: Rampart_Links_V1_VerifyLinkResponse
        do {
            link = try await verifier.verify(check)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return await refuse(DownloadDecision.linkFailed(error))
        }
        trail.verified(link)
        outcome.logger[metadataKey: "backup"] = "\(link.backupID)"
        outcome.logger[metadataKey: "object"] = "\(link.objectID)"

        // 2. The object it names.
        let found: Rampart_Storage_V1_ObjectInfo?
        do {
            found = try await storage.objectInfo(id: link.objectID)
        } catch {
            return await refuse(.unavailable("object lookup failed: \(error)", audit: "the object could not be looked up"))
        }
        let info: Rampart_Storage_V1_ObjectInfo
        switch DownloadDecision.object(found, for: link) {
        case .success(let object): info = object
        case .failure(let refusal): return await refuse(refusal)
        }

        // 3. What to send.
        let plan: DownloadPlan
        switch DownloadDecision.plan(
            method: request.method, ranges: request.headers[values: .range], ifRange: request.headers[.ifRange], info: info)
        {
        case .success(let chosen): plan = chosen
        case .failure(let refusal): return await refuse(refusal)
        }
        let (status, range, rangeText, headers) = (plan.status, plan.range, plan.rangeText, plan.headers)

        // 4. Open it (a damaged or missing file fails here, before any header is sent).
        let reader: ObjectRangeReader
        do {
            reader = try await storage.openRange(info, range: range)
        } catch let error as ObjectReadError {
            await trail.record(
                error.kind == .damaged ? .dataLoss : .internal, httpStatus: 500,
                message: "storage error: \(error.kind)")
            return outcome.storageFailure(error, objectId: info.objectID)
        } catch {
            await trail.record(.internal, httpStatus: 500, message: "storage error")
            return outcome.storageFailure(ObjectReadError(.io, "\(error)"), objectId: info.objectID)
        }
        if request.method == .head {
            reader.close()
            await trail.record(.ok, httpStatus: status.code, message: "headers sent", range: rangeText)
            outcome.log(.info, "download headers sent", status: status, bytes: 0)
            return Response(status: status, headers: headers, body: ResponseBody())
        }

        let record = DownloadRecord(
            backupId: link.backupID, objectId: info.objectID, fileName: info.fileName, bytes: 0, range: rangeText,
            keyId: link.keyID, nonce: link.nonce, remote: context.remote, status: "\(status.code)",
            httpStatus: status.code, deviceId: link.deviceID, deviceName: link.deviceName)
        let storage = storage
        let length = Int(clamping: range.upperBound - range.lowerBound)
        let body = ResponseBody(contentLength: length) { writer in
            var record = record
            var sent: UInt64 = 0
            do {
                // Batch n is sent while batch n+1 is read and decrypted off the event loop; the writer
                // suspends while the client is slow (back-pressure), so at most two batches are in memory.
                var current = try await reader.nextPieces()
                while let pieces = current {
                    try Task.checkCancellation()  // the server is cut off after its drain timeout
                    async let upcoming = reader.nextPieces()
                    let count = pieces.reduce(0) { $0 + $1.count }
                    if count > 0 {
                        // The decrypted frames go straight into the outgoing buffer: one copy.
                        var buffer = ByteBuffer()
                        buffer.reserveCapacity(count)
                        for piece in pieces { buffer.writeBytes(piece) }
                        try await writer.write(buffer)
                        sent += UInt64(count)
                    }
                    current = try await upcoming
                }
                try await writer.finish(nil)
            } catch {
                reader.close()
                if let error = error as? ObjectReadError {
                    outcome.logger.critical(
                        "stored object is damaged; download cut off",
                        metadata: ["error": "\(error)", "status": "\(status.code)", "bytes": "\(sent)"])
                } else {
                    outcome.log(.notice, "download cut off", status: status, bytes: sent, reason: "\(error)")
                }
                record.bytes = sent
                record.status = "incomplete"
                await Self.record(record, storage: storage, logger: outcome.logger)
                let damaged = (error as? ObjectReadError)?.kind == .damaged
                await trail.record(
                    damaged ? .dataLoss : .cancelled, httpStatus: status.code,
                    message: damaged ? "cut off: the stored object is damaged" : "cut off before the end",
                    bytes: sent, range: rangeText)
                throw error
            }
            reader.close()
            outcome.log(.info, "download sent", status: status, bytes: sent, extra: ["range": "\(rangeText)"])
            record.bytes = sent
            await Self.record(record, storage: storage, logger: outcome.logger)
            await trail.record(.ok, httpStatus: status.code, message: "sent", bytes: sent, range: rangeText)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// Records the download event even when the request's task is being cancelled (shutdown).
    static func record(_ record: DownloadRecord, storage: StorageService, logger: Logger) async {
        let task = Task { try await storage.recordDownload(record) }
        do {
            try await task.value
        } catch {
            logger.error("download event not recorded", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Helpers

    /// The raw path and raw query (without "?") of a request target, exactly as received.
    static func split(_ target: String) -> (path: String, query: String) {
        guard let mark = target.firstIndex(of: "?") else { return (target, "") }
        return (String(target[..<mark]), String(target[target.index(after: mark)...]))
    }

    /// `text` reduced to printable ASCII (others become "?"), at most `limit` characters.
    static func printable(_ text: String, limit: Int) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(limit) {
            out.unicodeScalars.append((0x20...0x7e).contains(scalar.value) ? scalar : "?")
        }
        return out
    }

    /// `Repr-Digest` (RFC 9530): the digest of the whole file, whichever part of it an answer carries.
    static let reprDigestField = HTTPField.Name("Repr-Digest")!

    /// `sha-256=:<base64>:` for an object id (the SHA-256 of the plain bytes, hex); nil for an id that is
    /// not 64 hex digits.
    static func reprDigest(objectId: String) -> String? {
        guard objectId.utf8.count == 64 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        var index = objectId.startIndex
        while index < objectId.endIndex {
            let next = objectId.index(index, offsetBy: 2)
            guard let byte = UInt8(objectId[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return "sha-256=:\(Data(bytes).base64EncodedString()):"
    }

    /// `attachment; filename="…"` with `"` and `\` escaped and anything but printable ASCII replaced by
    /// "_"; plus `filename*=UTF-8''…` (RFC 6266, RFC 8187) when the name is not plain ASCII.
    static func contentDisposition(fileName: String) -> String {
        var fallback = ""
        var plain = true
        for scalar in fileName.unicodeScalars {
            switch scalar.value {
            case 0x22, 0x5c:
                fallback += "\\" + String(scalar)
            case 0x20...0x7e:
                fallback.unicodeScalars.append(scalar)
            default:
                fallback += "_"
                plain = false
            }
        }
        var value = "attachment; filename=\"\(fallback)\""
        if !plain {
            let attrChars = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~".utf8)
            var encoded = ""
            for byte in fileName.utf8 {
                if attrChars.contains(byte) {
                    encoded.unicodeScalars.append(Unicode.Scalar(byte))
                } else {
                    encoded += String(format: "%%%02X", byte)
                }
            }
            value += "; filename*=UTF-8''\(encoded)"
        }
        return value
    }
}

/// How one request ended, logged once with its method, status, bytes, backup and (on refusal) reason.
final class DownloadLog: @unchecked Sendable {
    // Mutated only before the response is returned; read afterwards by the body writer.
    var logger: Logger
    let started: ContinuousClock.Instant

    init(logger: Logger, started: ContinuousClock.Instant) {
        self.logger = logger
        self.started = started
    }

    func log(
        _ level: Logger.Level, _ message: Logger.Message, status: HTTPResponse.Status, bytes: UInt64,
        reason: String? = nil, extra: Logger.Metadata = [:]
    ) {
        let elapsed = ContinuousClock.now - started
        var metadata = extra
        metadata["status"] = "\(status.code)"
        metadata["bytes"] = "\(bytes)"
        metadata["ms"] = "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)"
        if let reason { metadata["reason"] = "\(reason)" }
        logger.log(level: level, message, metadata: metadata)
    }

    /// A short text response that sends no object data (403, 404, 405, 416).
    func refused(_ status: HTTPResponse.Status, _ text: String, reason: String) -> Response {
        log(.notice, "download refused", status: status, bytes: 0, reason: reason)
        return Self.text(status, text)
    }

    /// The answer to `refusal` (logged as refused or unavailable), with its headers.
    func answer(_ refusal: DownloadRefusal) -> Response {
        var response =
            refusal.kind == .unavailable
            ? unavailable(reason: refusal.reason) : refused(refusal.status, refusal.text, reason: refusal.reason)
        for field in refusal.headers { response.headers[field.name] = field.value }
        return response
    }

    /// 503 with Retry-After: the link or the object could not be looked up right now.
    func unavailable(reason: String) -> Response {
        log(.warning, "download unavailable", status: .serviceUnavailable, bytes: 0, reason: reason)
        var response = Self.text(.serviceUnavailable, "service unavailable, retry later")
        response.headers[.retryAfter] = "\(DownloadResponder.retryAfterSeconds)"
        return response
    }

    /// 500: the object's file is damaged, missing or unreadable (damage is logged as critical).
    func storageFailure(_ error: ObjectReadError, objectId: String) -> Response {
        if error.kind == .damaged {
            logger.critical("stored object is damaged", metadata: ["object": "\(objectId)", "error": "\(error)"])
        }
        log(.error, "download failed", status: .internalServerError, bytes: 0, reason: "\(error)")
        return Self.text(.internalServerError, "storage error")
    }

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(
            status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
    }
}
