import RampartAPI
import RampartAudit
import RampartLinks
import RampartProto

/// The audit record of one signed-link download request (P9): who (the link's key, as
/// "link:<key id>"), what ("GET <path>"), which backup, how it ended. Before the link is checked the key
/// id and the backup id are the ones the request claims; once it is verified they are the link's.
final class DownloadAudit: @unchecked Sendable {
    // Mutated only before the response is returned; read afterwards by the body writer.
    private let sink: any AuditSink
    private let method: String
    private let remote: String
    private(set) var subject: String
    private(set) var keyId: String
    private var facts: [String: String] = [:]

    /// The trail of a request with HTTP `method`, raw `path` and raw `query`, from `remote` ("" when unknown).
    init(sink: any AuditSink, method: String, path: String, query: String, remote: String) {
        self.sink = sink
        self.method = method + " " + DownloadResponder.printable(path, limit: 1024)
        self.remote = remote
        self.subject = Self.claimedBackupId(path)
        self.keyId = Self.claimedKeyId(query)
    }

    /// The link checked out: its backup, key and object replace what the request claimed.
    func verified(_ link: Rampart_Links_V1_VerifyLinkResponse) {
        subject = link.backupID
        keyId = link.keyID
        facts["verified"] = "true"
        facts["object"] = link.objectID
        facts["file"] = link.fileName
        if !link.deviceID.isEmpty { facts["device"] = link.deviceID }
    }

    /// Appends the record of how the request ended.
    func record(
        _ outcome: Rampart_Bus_V1_StatusCode, httpStatus: Int, message: String, bytes: UInt64 = 0, range: String = ""
    ) async {
        var details = facts
        details["http-status"] = "\(httpStatus)"
        details["bytes"] = "\(bytes)"
        if !range.isEmpty { details["range"] = range }
        if !remote.isEmpty { details["remote"] = remote }
        if details["verified"] == nil { details["verified"] = "false" }
        await sink.append(
            AuditRecord(
                callerKey: keyId.isEmpty ? "" : "link:" + keyId, callerName: "link", service: StorageAPI.serviceName, method: method,
                subject: subject, outcome: outcome, message: message, details: details))
    }

    /// The first path segment after `/v1/backups/` (the backup id the request names), printable, short.
    static func claimedBackupId(_ path: String) -> String {
        guard path.hasPrefix(LinksAPI.downloadPathPrefix) else { return "" }
        let rest = path.dropFirst(LinksAPI.downloadPathPrefix.count)
        return DownloadResponder.printable(String(rest.prefix { $0 != "/" }), limit: 64)
    }

    /// The `kid` query parameter (the key the link claims to be signed with), printable, short.
    static func claimedKeyId(_ query: String) -> String {
        for pair in query.split(separator: "&") where pair.hasPrefix("kid=") {
            return DownloadResponder.printable(String(pair.dropFirst(4)), limit: 64)
        }
        return ""
    }
}
