import RampartProto

/// Which audit entries a `list` call returns: a time window, a caller, a method prefix, refusals only,
/// and a page (entries after `afterId`, at most `limit`). Unset fields do not filter.
public struct AuditFilter: Sendable, Hashable {
    /// Page size when the request says 0.
    public static let defaultLimit = 100
    /// Largest page.
    public static let maxLimit = 1000
    /// Longest `caller` and `methodPrefix` accepted, in characters.
    public static let maxTextLength = 512
    /// The latest time accepted: 9999-12-31T23:59:59.999Z.
    public static let maxUnixMs: Int64 = 253_402_300_799_999

    /// Entries recorded at or after this time, ms since the epoch; 0 = no lower bound.
    public var sinceUnixMs: Int64
    /// Entries recorded before this time (exclusive), ms since the epoch; 0 = no upper bound.
    public var untilUnixMs: Int64
    /// A caller name, a full key, or the first 8 or more characters of a key; "" = anyone.
    public var caller: String
    /// Methods starting with this; "" = any.
    public var methodPrefix: String
    /// Only entries whose outcome is not OK.
    public var refusedOnly: Bool
    /// Only entries with a larger id (the last id of the previous page).
    public var afterId: UInt64
    /// At most this many entries, 1...`maxLimit`.
    public var limit: Int

    /// A filter; the defaults match every entry, the first `defaultLimit` of them.
    public init(
        sinceUnixMs: Int64 = 0, untilUnixMs: Int64 = 0, caller: String = "", methodPrefix: String = "",
        refusedOnly: Bool = false, afterId: UInt64 = 0, limit: Int = AuditFilter.defaultLimit
    ) {
        self.sinceUnixMs = sinceUnixMs
        self.untilUnixMs = untilUnixMs
        self.caller = caller
        self.methodPrefix = methodPrefix
        self.refusedOnly = refusedOnly
        self.afterId = afterId
        self.limit = limit
    }

    /// The filter of a `List` request (limit 0 → `defaultLimit`); throws `AuditFilterError` when it is unusable.
    public init(_ request: Rampart_Audit_V1_ListAuditRequest) throws(AuditFilterError) {
        self.init(
            sinceUnixMs: request.sinceUnixMs, untilUnixMs: request.untilUnixMs, caller: request.caller,
            methodPrefix: request.methodPrefix, refusedOnly: request.refusedOnly, afterId: request.afterID,
            limit: request.limit == 0 ? Self.defaultLimit : Int(request.limit))
        try validate()
    }

    /// Throws `AuditFilterError`, with a message for people, when a field is out of range.
    public func validate() throws(AuditFilterError) {
        guard sinceUnixMs >= 0 else {
            throw AuditFilterError("since_unix_ms must not be negative (got \(sinceUnixMs))")
        }
        guard untilUnixMs >= 0 else {
            throw AuditFilterError("until_unix_ms must not be negative (got \(untilUnixMs))")
        }
        guard sinceUnixMs <= Self.maxUnixMs, untilUnixMs <= Self.maxUnixMs else {
            throw AuditFilterError("since_unix_ms and until_unix_ms must be before the year 10000")
        }
        if sinceUnixMs > 0, untilUnixMs > 0, sinceUnixMs >= untilUnixMs {
            throw AuditFilterError(
                "since_unix_ms (\(sinceUnixMs)) must be before until_unix_ms (\(untilUnixMs)): the window is empty")
        }
        guard (1...Self.maxLimit).contains(limit) else {
            throw AuditFilterError(
                "limit must be between 1 and \(Self.maxLimit) (0 means \(Self.defaultLimit)); got \(limit)")
        }
        guard afterId <= UInt64(Int64.max) else { throw AuditFilterError("after_id \(afterId) is out of range") }
        for (name, value) in [("caller", caller), ("method_prefix", methodPrefix)] {
            guard value.count <= Self.maxTextLength else {
                throw AuditFilterError("\(name) is longer than \(Self.maxTextLength) characters")
            }
            guard !value.contains("\u{0}") else { throw AuditFilterError("\(name) must not contain a NUL character") }
        }
    }
}

/// Why an audit filter was refused; the service answers INVALID_ARGUMENT with `message`.
public struct AuditFilterError: Error, CustomStringConvertible, Sendable, Hashable {
    /// What is wrong, for people.
    public var message: String

    /// An error saying `message`.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { "invalid audit filter: \(message)" }
}
