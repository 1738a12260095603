import Foundation

/// The time link-signer signs and checks links at: the system clock, plus an offset read from a
/// file when one is configured (`--clock-offset-file`, for tests that move time forward, e.g. one
/// second past a link's expiry). Without a file it is exactly the system clock.
public struct LinkClock: Sendable {
    /// The file holding the offset in seconds (a decimal number); nil for the plain system clock.
    public let offsetFile: String?

    /// A clock; `offsetFile` is read at every reading, a missing or empty file meaning no offset.
    public init(offsetFile: String? = nil) {
        self.offsetFile = offsetFile
    }

    /// Now.
    public func now() -> Date {
        Date().addingTimeInterval(offset())
    }

    func offset() -> TimeInterval {
        guard let offsetFile, let data = FileManager.default.contents(atPath: offsetFile),
            let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            let seconds = TimeInterval(text), seconds.isFinite
        else { return 0 }
        return seconds
    }
}
