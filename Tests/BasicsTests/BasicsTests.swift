import Foundation
import RampartBasics
import Testing

@Suite("Basics: epoch milliseconds and hex")
struct BasicsTests {
    @Test("Milliseconds round to the nearest, both ways, and survive a round trip")
    func millis() {
        #expect(Date(timeIntervalSince1970: 1.0004).unixMillis == 1000)
        #expect(Date(timeIntervalSince1970: 1.0006).unixMillis == 1001)
        #expect(Date(timeIntervalSince1970: -1.0006).unixMillis == -1001)
        for ms: Int64 in [0, 1, 999, 1_796_139_980_123, -5] {
            #expect(Date(unixMillis: ms).unixMillis == ms)
        }
    }

    @Test("Hex is lower case, two digits a byte, like sha256sum")
    func hex() {
        #expect([UInt8]().hexString == "")
        #expect([0x00, 0x0f, 0xa0, 0xff].hexString == "000fa0ff")
    }
}

@Suite("Basics: durations as people type them")
struct DurationTextTests {
    @Test("Units in order, each once, add up", arguments: [
        ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86_400), ("1d12h", 129_600), ("1h30m", 5400),
        ("1d2h3m4s", 93_784), ("0m", 0),
    ] as [(String, Int64)])
    func accepted(text: String, seconds: Int64) {
        #expect(DurationText.seconds(text) == seconds)
    }

    @Test("Anything else is no duration", arguments: [
        "", "5", "h", "1h2d", "1h1h", "1.5h", "-1h", "1H", " 1h", "1w", "1234567890s", "1h 30m",
    ])
    func refused(text: String) {
        #expect(DurationText.seconds(text) == nil)
    }

    @Test("Only the allowed units count: a link's validity has no days")
    func allowedUnits() {
        #expect(DurationText.seconds("1d", units: [.hours, .minutes, .seconds]) == nil)
        #expect(DurationText.seconds("6h", units: [.hours, .minutes, .seconds]) == 21_600)
    }
}
