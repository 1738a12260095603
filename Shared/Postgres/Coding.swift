import Foundation

/// A Swift value that can be sent as a bind parameter.
public protocol PostgresEncodable: Sendable {
    /// The value as a parameter (text format, except bytea which is binary).
    var postgresBind: PostgresBind { get }
}

/// A Swift value that can be read from a text-format result value.
public protocol PostgresDecodable {
    /// Parses PostgreSQL's text output for the type; throws `PostgresError` of kind `.decoding`.
    init(postgresText: String) throws
}

/// An element type of a Swift array bound to PostgreSQL: `[UInt8]` is bytea, the others are arrays (`text[]`, …).
///
/// Swift allows one conditional conformance of `Array` per protocol, so both go through this protocol.
public protocol PostgresArrayElement: Sendable {
    /// Encodes an array of this element type.
    static func postgresArrayBind(_ array: [Self]) -> PostgresBind
    /// Decodes an array of this element type from text output.
    static func postgresArray(fromText text: String) throws -> [Self]
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    /// bytea for `[UInt8]`, an array literal otherwise.
    public var postgresBind: PostgresBind { Element.postgresArrayBind(self) }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement {
    /// Parses bytea hex output for `[UInt8]`, an array literal otherwise.
    public init(postgresText: String) throws {
        self = try Element.postgresArray(fromText: postgresText)
    }
}

func decodingError(_ type: Any.Type, _ why: String) -> PostgresError {
    PostgresError(kind: .decoding, message: "cannot decode \(type): \(why)")
}

// MARK: - Scalars

extension String: PostgresEncodable, PostgresDecodable {
    /// The string as text.
    public var postgresBind: PostgresBind { PostgresBind(text: self) }
    /// The text itself.
    public init(postgresText: String) { self = postgresText }
}

extension Int: PostgresEncodable, PostgresDecodable {
    /// Decimal text.
    public var postgresBind: PostgresBind { PostgresBind(text: String(self)) }
    /// Parses decimal text.
    public init(postgresText: String) throws {
        guard let value = Int(postgresText) else { throw decodingError(Int.self, "not an integer") }
        self = value
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    /// Decimal text.
    public var postgresBind: PostgresBind { PostgresBind(text: String(self)) }
    /// Parses decimal text.
    public init(postgresText: String) throws {
        guard let value = Int64(postgresText) else { throw decodingError(Int64.self, "not a 64-bit integer") }
        self = value
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    /// Decimal text.
    public var postgresBind: PostgresBind { PostgresBind(text: String(self)) }
    /// Parses decimal text.
    public init(postgresText: String) throws {
        guard let value = Int32(postgresText) else { throw decodingError(Int32.self, "not a 32-bit integer") }
        self = value
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    /// "true" or "false".
    public var postgresBind: PostgresBind { PostgresBind(text: self ? "true" : "false") }
    /// Parses "t"/"f" (and "true"/"false").
    public init(postgresText: String) throws {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw decodingError(Bool.self, "not a boolean")
        }
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    /// Shortest exact decimal text; "Infinity", "-Infinity", "NaN" for the special values.
    public var postgresBind: PostgresBind {
        if isNaN { return PostgresBind(text: "NaN") }
        if isInfinite { return PostgresBind(text: self < 0 ? "-Infinity" : "Infinity") }
        return PostgresBind(text: String(self))
    }
    /// Parses float8/numeric text output.
    public init(postgresText: String) throws {
        switch postgresText {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default:
            guard let value = Double(postgresText) else { throw decodingError(Double.self, "not a number") }
            self = value
        }
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    /// The canonical text form.
    public var postgresBind: PostgresBind { PostgresBind(text: uuidString) }
    /// Parses the canonical text form.
    public init(postgresText: String) throws {
        guard let value = UUID(uuidString: postgresText) else { throw decodingError(UUID.self, "not a UUID") }
        self = value
    }
}

// MARK: - bytea

extension UInt8: PostgresArrayElement {
    /// bytea, bound in binary format.
    public static func postgresArrayBind(_ array: [UInt8]) -> PostgresBind {
        PostgresBind(value: array, isBinary: true)
    }
    /// Parses bytea hex output ("\x0a1b…").
    public static func postgresArray(fromText text: String) throws -> [UInt8] {
        try decodeByteaHex(text)
    }
}

extension Data: PostgresEncodable, PostgresDecodable {
    /// bytea, bound in binary format.
    public var postgresBind: PostgresBind { PostgresBind(value: Array(self), isBinary: true) }
    /// Parses bytea hex output ("\x0a1b…").
    public init(postgresText: String) throws {
        self = Data(try decodeByteaHex(postgresText))
    }
}

func decodeByteaHex(_ text: String) throws -> [UInt8] {
    let utf8 = Array(text.utf8)
    guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
        throw decodingError([UInt8].self, "not bytea hex output (bytea_output must be 'hex')")
    }
    func nibble(_ c: UInt8) throws -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: throw decodingError([UInt8].self, "invalid hex digit")
        }
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity((utf8.count - 2) / 2)
    var index = 2
    while index < utf8.count {
        bytes.append(try nibble(utf8[index]) << 4 | nibble(utf8[index + 1]))
        index += 2
    }
    return bytes
}

// MARK: - Date (timestamptz)

private let microsPerSecond: Int64 = 1_000_000
private let unixToReferenceMicros: Int64 = 978_307_200 * 1_000_000

extension Date: PostgresEncodable, PostgresDecodable {
    /// ISO-8601 in UTC with microseconds, e.g. "2026-11-27T13:11:57.123456Z" (rounded to the microsecond).
    public var postgresBind: PostgresBind {
        let micros = Int64((timeIntervalSinceReferenceDate * 1_000_000).rounded()) + unixToReferenceMicros
        return PostgresBind(text: formatTimestamp(unixMicros: micros))
    }

    /// Parses timestamptz output in DateStyle ISO ("2026-11-27 13:11:57.123456+00"); a value without offset is UTC.
    public init(postgresText: String) throws {
        switch postgresText {
        case "infinity": self = .distantFuture
        case "-infinity": self = .distantPast
        default:
            let micros = try parseTimestamp(postgresText)
            self = Date(timeIntervalSinceReferenceDate: Double(micros - unixToReferenceMicros) / 1_000_000)
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146097 + doe - 719468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let z = days + 719468
    let era = (z >= 0 ? z : z - 146096) / 146097
    let doe = z - era * 146097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (month <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, month, day)
}

func formatTimestamp(unixMicros: Int64) -> String {
    var days = unixMicros / (86_400 * microsPerSecond)
    var rest = unixMicros % (86_400 * microsPerSecond)
    if rest < 0 {
        days -= 1
        rest += 86_400 * microsPerSecond
    }
    let (year, month, day) = civilFromDays(days)
    let seconds = rest / microsPerSecond
    let fraction = rest % microsPerSecond
    func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    // Years outside 1...9999 are not produced by realistic dates; PostgreSQL accepts the wider forms anyway.
    return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2))"
        + ":\(pad(seconds % 60, 2)).\(pad(fraction, 6))Z"
}

/// Parses "YYYY-MM-DD HH:MM:SS[.ffffff][(+|-)HH[:MM[:SS]]]" into microseconds since 1970 (UTC).
func parseTimestamp(_ text: String) throws -> Int64 {
    let bytes = Array(text.utf8)
    var index = 0
    func fail() -> PostgresError {
        decodingError(Date.self, "not an ISO timestamp (DateStyle must be ISO)")
    }
    func number(maxDigits: Int = 9) throws -> Int64 {
        var value: Int64 = 0
        var count = 0
        while index < bytes.count, count < maxDigits, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
            value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
            index += 1
            count += 1
        }
        guard count > 0 else { throw fail() }
        return value
    }
    func expect(_ character: Character) throws {
        guard index < bytes.count, bytes[index] == character.asciiValue else { throw fail() }
        index += 1
    }
    let year = try number()
    try expect("-")
    let month = try number(maxDigits: 2)
    try expect("-")
    let day = try number(maxDigits: 2)
    guard index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "T") else {
        throw fail()
    }
    index += 1
    let hour = try number(maxDigits: 2)
    try expect(":")
    let minute = try number(maxDigits: 2)
    try expect(":")
    let second = try number(maxDigits: 2)
    var micros: Int64 = 0
    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
        index += 1
        let start = index
        let fraction = try number(maxDigits: 6)
        var scale = 6 - (index - start)
        micros = fraction
        while scale > 0 {
            micros *= 10
            scale -= 1
        }
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
    }
    var offsetSeconds: Int64 = 0
    if index < bytes.count {
        let sign: Int64
        switch bytes[index] {
        case UInt8(ascii: "+"): sign = 1
        case UInt8(ascii: "-"): sign = -1
        case UInt8(ascii: "Z"):
            sign = 0
        default: throw fail()
        }
        index += 1
        if sign != 0 {
            var offset = try number(maxDigits: 2) * 3600
            if index < bytes.count, bytes[index] == UInt8(ascii: ":") {
                index += 1
                offset += try number(maxDigits: 2) * 60
                if index < bytes.count, bytes[index] == UInt8(ascii: ":") {
                    index += 1
                    offset += try number(maxDigits: 2)
                }
            }
            offsetSeconds = sign * offset
        }
    }
    guard index == bytes.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
        second < 61
    else { throw fail() }
    let days = daysFromCivil(year: year, month: month, day: day)
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
    return seconds * microsPerSecond + micros
}

// MARK: - Arrays (text[], int8[], …)

extension PostgresArrayElement where Self: PostgresEncodable & PostgresDecodable {
    /// An array literal with every element quoted and escaped: `{"a","b \"c\""}`.
    public static func postgresArrayBind(_ array: [Self]) -> PostgresBind {
        var literal = "{"
        for (position, element) in array.enumerated() {
            if position > 0 { literal += "," }
            guard let bytes = element.postgresBind.value else {
                literal += "NULL"
                continue
            }
            literal += "\""
            for character in String(decoding: bytes, as: UTF8.self) {
                if character == "\"" || character == "\\" { literal += "\\" }
                literal.append(character)
            }
            literal += "\""
        }
        literal += "}"
        return PostgresBind(text: literal)
    }

    /// Parses a one-dimensional array's text output; a NULL element throws (the element type is not optional).
    public static func postgresArray(fromText text: String) throws -> [Self] {
        try parseArrayLiteral(text).map { element in
            guard let element else { throw decodingError([Self].self, "the array contains NULL") }
            return try Self(postgresText: element)
        }
    }
}

extension String: PostgresArrayElement {}
extension Int: PostgresArrayElement {}
extension Int64: PostgresArrayElement {}
extension Int32: PostgresArrayElement {}
extension Bool: PostgresArrayElement {}
extension Double: PostgresArrayElement {}
extension UUID: PostgresArrayElement {}
extension Date: PostgresArrayElement {}

/// Parses a one-dimensional array literal as PostgreSQL prints it; nil elements are NULL.
func parseArrayLiteral(_ text: String) throws -> [String?] {
    var characters = Substring(text)
    func fail(_ why: String) -> PostgresError { decodingError([String].self, why) }
    // A lower bound other than 1 is printed as "[0:2]={…}".
    if characters.first == "[" {
        guard let equals = characters.firstIndex(of: "=") else { throw fail("malformed array bounds") }
        characters = characters[characters.index(after: equals)...]
    }
    guard characters.first == "{", characters.last == "}" else { throw fail("not an array literal") }
    characters = characters.dropFirst().dropLast()
    var elements: [String?] = []
    if characters.isEmpty { return elements }
    var iterator = characters.makeIterator()
    while true {
        var element = ""
        var quoted = false
        var next = iterator.next()
        if next == "\"" {
            quoted = true
            while true {
                guard var character = iterator.next() else { throw fail("unterminated quoted element") }
                if character == "\"" { break }
                if character == "\\" {
                    guard let escaped = iterator.next() else { throw fail("dangling backslash") }
                    character = escaped
                }
                element.append(character)
            }
            next = iterator.next()
        } else {
            while let character = next, character != "," {
                if character == "{" { throw fail("multi-dimensional arrays are not supported") }
                if character == "\\" {
                    guard let escaped = iterator.next() else { throw fail("dangling backslash") }
                    element.append(escaped)
                } else {
                    element.append(character)
                }
                next = iterator.next()
            }
        }
        if !quoted && element.uppercased() == "NULL" {
            elements.append(nil)
        } else {
            elements.append(element)
        }
        guard let separator = next else { break }
        guard separator == "," else { throw fail("unexpected character after an element") }
    }
    return elements
}
