import Foundation
import RampartAudit
import Testing

/// P9: `rampart audit --since/--until` take RFC 3339 times or durations ago.
@Suite("P9: audit time filters parse RFC 3339 and durations ago")
struct AuditTimeTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000.25)
    static let nowMs: Int64 = 1_800_000_000_250

    @Test(
        "P9: durations count back from now",
        arguments: [("2h", 7_200_000), ("30m", 1_800_000), ("45s", 45_000), ("1d12h", 129_600_000), ("0s", 0)]
            as [(String, Int64)])
    func durations(text: String, ago: Int64) throws {
        #expect(try AuditTime.parse(text, now: Self.now) == Self.nowMs - ago)
    }

    @Test(
        "P9: RFC 3339 times, with offsets and fractions",
        arguments: [
            ("2026-11-27T13:00:00Z", 1_795_784_400_000), ("2026-11-27T14:00:00+01:00", 1_795_784_400_000),
            ("2026-11-27T13:00:00.5Z", 1_795_784_400_500), ("2026-11-27 13:00:00Z", 1_795_784_400_000),
        ] as [(String, Int64)])
    func timestamps(text: String, unixMs: Int64) throws {
        #expect(try AuditTime.parse(text, now: Self.now) == unixMs)
    }

    @Test(
        "P9: anything else is refused with a message",
        arguments: ["", "2", "h", "2x", "30m2h", "2h2h", "-2h", "yesterday", "2026-11-27", "2026-11-27T13:00:00",
                    "1969-12-31T00:00:00Z", "1234567890h"])
    func refused(text: String) {
        #expect(throws: AuditFilterError.self) { try AuditTime.parse(text, now: Self.now) }
    }
}
