import RampartBasics

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
        let bad = LinkValidityError(
            "invalid validity \"\(text)\": use hours, minutes and seconds such as 6h, 90m, 45s or 1h30m")
        guard let total = DurationText.seconds(text, units: [.hours, .minutes, .seconds]) else { throw bad }
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
