import Foundation

/// Milliseconds since the Unix epoch, the unit of every `*_unix_ms` field, with one rounding rule:
/// to the nearest millisecond (a time read back from PostgreSQL's microseconds gives the same number
/// it was written from).
extension Date {
    /// This instant in milliseconds since the epoch, rounded to the nearest.
    public var unixMillis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    /// The instant `unixMillis` milliseconds after the epoch.
    public init(unixMillis: Int64) { self.init(timeIntervalSince1970: Double(unixMillis) / 1000) }
}

extension Sequence where Element == UInt8 {
    /// The bytes in lower-case hexadecimal, two digits each (a SHA-256 digest as 64 characters).
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
