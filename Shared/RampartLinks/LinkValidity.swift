/// How long a download link stays valid (L2): six hours by default, never more than the maximum.
public enum LinkValidity {
    /// The validity of a link when none is asked for: six hours.
    public static let `default`: Duration = .seconds(6 * 3600)
    /// The longest validity anyone may ask for: six hours.
    public static let maximum: Duration = .seconds(6 * 3600)

    /// Parses a validity such as "6h", "90m", "45s" or "1h30m" (hours, minutes, seconds, each at
    /// most once and in that order). Throws for zero, negatives, anything else and anything above
    /// `maximum`.
    public static func parse(_ text: String) throws(LinkValidityError) -> Duration {
        let units: [(Character, Int64)] = [("h", 3600), ("m", 60), ("s", 1)]
        let bad = LinkValidityError(
            "invalid validity \"\(text)\": use hours, minutes and seconds such as 6h, 90m, 45s or 1h30m")
        guard !text.isEmpty else { throw bad }
        var total: Int64 = 0
        var nextUnit = 0
        var digits = ""
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
                guard digits.count <= 9 else { throw bad }
                continue
            }
            guard !digits.isEmpty,
                let index = units[nextUnit...].firstIndex(where: { $0.0 == character }),
                let number = Int64(digits)
            else { throw bad }
            total += number * units[index].1
            nextUnit = index + 1
            digits = ""
        }
        guard digits.isEmpty else { throw bad }
        guard total > 0 else { throw LinkValidityError("invalid validity \"\(text)\": it must be longer than zero") }
        guard total <= maximum.components.seconds else {
            throw LinkValidityError("invalid validity \"\(text)\": the maximum is 6h")
        }
        return .seconds(total)
    }
}

/// Why a validity was refused, with a message for people.
public struct LinkValidityError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong and what is accepted.
    public let message: String
    /// Makes an error with a message for people.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
