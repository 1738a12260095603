import Foundation
import RampartBasics

/// The times `rampart audit --since/--until` accept: an RFC 3339 timestamp ("2026-11-27T13:00:00Z",
/// "2026-11-27T14:00:00.5+01:00") or a duration meaning "that long ago" ("2h", "30m", "1d12h", "90s").
public enum AuditTime {
    /// Milliseconds since the epoch of `text`, durations counted back from `now`; throws
    /// `AuditFilterError` with a message for people when it is neither form.
    public static func parse(_ text: String, now: Date) throws(AuditFilterError) -> Int64 {
        let text = text.trimmingCharacters(in: .whitespaces)
        if let seconds = DurationText.seconds(text) {
            return now.unixMillis - seconds * 1000
        }
        if let date = timestamp(text) {
            guard date.timeIntervalSince1970 > 0 else { throw AuditFilterError("\"\(text)\" is before 1970") }
            return date.unixMillis
        }
        throw AuditFilterError(
            "\"\(text)\" is neither an RFC 3339 time (2026-11-27T13:00:00Z) nor a duration ago (2h, 30m, 1d12h, 45s)")
    }

    /// An RFC 3339 timestamp, with or without fractional seconds, "T" or a space between date and time.
    static func timestamp(_ text: String) -> Date? {
        var text = text
        if text.count > 10, text[text.index(text.startIndex, offsetBy: 10)] == " " {
            text.replaceSubrange(
                text.index(text.startIndex, offsetBy: 10)...text.index(text.startIndex, offsetBy: 10), with: "T")
        }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
    }
}
