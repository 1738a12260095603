/// An error from PostgreSQL or from this wrapper; `description` never contains connection strings or values.
public struct PostgresError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    /// What failed.
    public enum Kind: Sendable, Hashable {
        /// Connecting failed or the connection was lost.
        case connection
        /// The server rejected a statement.
        case query
        /// A result value could not be decoded into a Swift type.
        case decoding
        /// The pool was closed or misused.
        case pool
    }

    /// What failed.
    public var kind: Kind
    /// The SQLSTATE code, e.g. "23505"; nil when the error did not come from the server.
    public var sqlState: String?
    /// The primary message, for people.
    public var message: String
    /// The server's DETAIL, which may quote row values: shown only in `debugDescription`.
    public var detail: String?
    /// The name of the violated constraint, if any.
    public var constraint: String?

    /// Creates an error.
    public init(
        kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil, constraint: String? = nil
    ) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.constraint = constraint
    }

    /// True for unique_violation (23505).
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// True for foreign_key_violation (23503).
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    /// True for a data exception (class 22: a value the server cannot take — NUL in text, out of range,
    /// invalid text representation): the caller's input is at fault, not the database.
    public var isInvalidInput: Bool { sqlState?.hasPrefix("22") == true }
    /// True for serialization_failure (40001) and deadlock_detected (40P01): the transaction may be retried.
    public var isSerializationFailure: Bool { sqlState == "40001" || sqlState == "40P01" }
    /// True when the server could not be reached or the session ended (class 08, 57P0x): retry later.
    public var isConnectionFailure: Bool {
        if kind == .connection { return true }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || sqlState.hasPrefix("57P0")
    }

    /// Kind, SQLSTATE, message and constraint; no detail (it may quote row values).
    public var description: String {
        var text = "PostgresError.\(kind)"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let constraint { text += " (constraint \(constraint))" }
        return text
    }

    /// The description plus the server's detail.
    public var debugDescription: String {
        guard let detail else { return description }
        return "\(description) — \(detail)"
    }
}
