import Foundation
import Logging
import RampartProto

/// One audited action as a writer hands it to `AuditLog.append`: who (key, name, role), what (service,
/// method, subject), how it ended and a few facts. The database adds the id and the time.
public struct AuditRecord: Sendable, Hashable {
    /// The caller's CURVE public key in Z85, "link:<key id>" for a signed-link download, "" when none.
    public var callerKey: String
    /// The caller's name ("ops-alice", "backup-worker"), "link" for a signed-link download.
    public var callerName: String
    /// The caller's role ("admin", "operator", "service"), "" when none.
    public var callerRole: String
    /// The service that served the call ("link-signer", "storage").
    public var service: String
    /// "package.Service/Method", or "<HTTP method> <path without query>" for HTTP.
    public var method: String
    /// What it was about: a device, job, backup, pair or lease id; "" when nothing in particular.
    public var subject: String
    /// How it ended; `.permissionDenied` for a refused call or link.
    public var outcome: Rampart_Bus_V1_StatusCode
    /// The status message or a short reason, for people.
    public var message: String
    /// Small facts ("remote", "bytes", "range").
    public var details: [String: String]

    /// A record; every field but the service, the method and the outcome may be left empty.
    public init(
        callerKey: String = "", callerName: String = "", callerRole: String = "", service: String, method: String,
        subject: String = "", outcome: Rampart_Bus_V1_StatusCode, message: String = "", details: [String: String] = [:]
    ) {
        self.callerKey = callerKey
        self.callerName = callerName
        self.callerRole = callerRole
        self.service = service
        self.method = method
        self.subject = subject
        self.outcome = outcome
        self.message = message
        self.details = details
    }

    /// Longest text field kept, in characters; longer values are cut and end with "…".
    public static let maxFieldLength = 2048
    /// Most details kept: when there are more, the first `maxDetails - 1` by key are kept and
    /// `details["details-dropped"]` says how many others were dropped.
    public static let maxDetails = 32

    /// The record as it is stored: NUL characters (which PostgreSQL text cannot hold) become U+FFFD,
    /// fields longer than `maxFieldLength` are cut, details beyond `maxDetails` are dropped, and an
    /// outcome the database cannot hold (an unrecognised negative code) becomes UNKNOWN.
    public var storable: AuditRecord {
        func clean(_ text: String, limit: Int = Self.maxFieldLength) -> String {
            var text = text.contains("\u{0}") ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
            if text.count > limit { text = String(text.prefix(limit - 1)) + "…" }
            return text
        }
        var copy = self
        copy.callerKey = clean(callerKey)
        copy.callerName = clean(callerName)
        copy.callerRole = clean(callerRole)
        copy.service = clean(service)
        copy.method = clean(method)
        copy.subject = clean(subject)
        copy.message = clean(message)
        if outcome.rawValue < 0 { copy.outcome = .unknown }
        let sorted = details.sorted { $0.key < $1.key }
        // Too many: the first maxDetails - 1 by key, plus the count of the others (so this is idempotent).
        let keep = sorted.count > Self.maxDetails ? Self.maxDetails - 1 : sorted.count
        var kept: [String: String] = [:]
        for (key, value) in sorted.prefix(keep) { kept[clean(key, limit: 128)] = clean(value) }
        if keep < sorted.count { kept["details-dropped"] = "\(sorted.count - keep)" }
        copy.details = kept
        return copy
    }

    /// Every field as log metadata, so a record that could not be stored is still in the log.
    public var logMetadata: Logger.Metadata {
        [
            "audit.caller-key": "\(callerKey)", "audit.caller-name": "\(callerName)",
            "audit.caller-role": "\(callerRole)", "audit.service": "\(service)", "audit.method": "\(method)",
            "audit.subject": "\(subject)", "audit.outcome": "\(outcome)", "audit.message": "\(message)",
            "audit.details": .dictionary(details.mapValues { .string($0) }),
        ]
    }
}

/// Where audit records go: `AuditLog` (PostgreSQL) in production, a recorder in tests.
public protocol AuditSink: Sendable {
    /// Records `record`; never throws (a record that cannot be stored is logged instead).
    func append(_ record: AuditRecord) async
}
