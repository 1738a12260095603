import Foundation

/// Makes the `trace-id` of each call (docs/protocol.md §4: a UUID per call) without asking the kernel
/// for randomness each time: `UUID()` costs about 3 µs (a `getrandom(2)` per call) — more than all the
/// header coding of a brokered round trip together (`bus-bench --codec`). Trace ids must be unique, not
/// secret: two random seeds drawn once per client, each call's number mixed by SplitMix64, a
/// bijection, so one client never repeats an id and two clients share one with negligible odds.
public struct TraceIds: Sendable {
    private let seeds: (UInt64, UInt64)

    /// A generator with fresh random seeds.
    public init() {
        var generator = SystemRandomNumberGenerator()
        seeds = (generator.next(), generator.next())
    }

    /// Seeds given, for tests.
    public init(seeds: (UInt64, UInt64)) { self.seeds = seeds }

    /// The id of call number `n`: a version-4-shaped UUID in lower case.
    public func make(_ n: UInt64) -> String {
        var high = Self.mix(seeds.0 ^ n)
        var low = Self.mix(seeds.1 &+ n)
        high = (high & ~0xF000) | 0x4000  // version 4
        low = (low & ~(0b11 << 62)) | (0b10 << 62)  // RFC 4122 variant
        return String(unsafeUninitializedCapacity: 36) { buffer in
            let digits: StaticString = "0123456789abcdef"
            var index = 0
            func put(_ value: UInt64, nibbles: Int) {
                for shift in stride(from: (nibbles - 1) * 4, through: 0, by: -4) {
                    buffer[index] = digits.utf8Start[Int((value >> UInt64(shift)) & 0xF)]
                    index += 1
                }
            }
            func dash() {
                buffer[index] = UInt8(ascii: "-")
                index += 1
            }
            put(high >> 32, nibbles: 8)
            dash()
            put(high >> 16, nibbles: 4)
            dash()
            put(high, nibbles: 4)
            dash()
            put(low >> 48, nibbles: 4)
            dash()
            put(low, nibbles: 12)
            return index
        }
    }

    /// SplitMix64's finalizer: a bijection of 64-bit values that scatters neighbours.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
