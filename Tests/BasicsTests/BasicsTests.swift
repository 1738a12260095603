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
