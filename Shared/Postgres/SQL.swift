/// One bind parameter of a statement: its bytes (nil is SQL NULL) and whether they are binary (bytea) or text.
public struct PostgresBind: Sendable, Hashable {
    /// The parameter's bytes, without a terminating NUL; nil for SQL NULL.
    public var value: [UInt8]?
    /// True for binary format, sent as bytea (OID 17); false for PostgreSQL's text format, its type inferred.
    public var isBinary: Bool

    /// Creates a parameter from raw bytes.
    public init(value: [UInt8]?, isBinary: Bool = false) {
        self.value = value
        self.isBinary = isBinary
    }

    /// Creates a text-format parameter.
    public init(text: String) {
        self.init(value: Array(text.utf8), isBinary: false)
    }

    /// SQL NULL.
    public static let null = PostgresBind(value: nil, isBinary: false)
}

/// A SQL statement whose interpolated values become bind parameters ($1, $2, …); never string-built.
///
/// `"SELECT * FROM t WHERE id = \(id) AND name = \(name)"` has the text `… id = $1 AND name = $2`.
/// Raw text (identifiers chosen by code, never by users) must be spelled `\(unsafeRaw: "t")`.
public struct SQL: ExpressibleByStringInterpolation, Sendable, Hashable, CustomStringConvertible {
    /// The statement text, with `$n` placeholders.
    public var text: String
    /// The values of the placeholders, `binds[0]` being `$1`.
    public var binds: [PostgresBind]

    /// Creates a statement from text with placeholders and its binds.
    public init(unsafeRawText text: String, binds: [PostgresBind] = []) {
        self.text = text
        self.binds = binds
    }

    /// Creates a statement without parameters from a literal.
    public init(stringLiteral value: String) {
        self.init(unsafeRawText: value)
    }

    /// Creates a statement from an interpolated literal; each value becomes a bind parameter.
    public init(stringInterpolation: StringInterpolation) {
        self.init(unsafeRawText: stringInterpolation.text, binds: stringInterpolation.binds)
    }

    /// The statement text only; values are never shown.
    public var description: String { text }

    /// Builds a `SQL` from literal text and interpolated values.
    public struct StringInterpolation: StringInterpolationProtocol, Sendable {
        var text: String
        var binds: [PostgresBind]

        /// Reserves room for the literal text and the interpolations.
        public init(literalCapacity: Int, interpolationCount: Int) {
            text = ""
            text.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds = []
            binds.reserveCapacity(interpolationCount)
        }

        /// Appends literal SQL text.
        public mutating func appendLiteral(_ literal: String) {
            text += literal
        }

        /// Appends a value as the next bind parameter (`$n`).
        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            appendBind(value.postgresBind)
        }

        /// Appends an optional value as the next bind parameter; nil becomes NULL.
        public mutating func appendInterpolation(_ value: (some PostgresEncodable)?) {
            appendBind(value?.postgresBind ?? .null)
        }

        /// Appends raw SQL text, for identifiers chosen by code only (never user input).
        public mutating func appendInterpolation(unsafeRaw raw: String) {
            text += raw
        }

        private mutating func appendBind(_ bind: PostgresBind) {
            binds.append(bind)
            text += "$\(binds.count)"
        }
    }
}
