import Foundation
import Synchronization

/// The numbering of this process's presence reports (`ReportPresenceRequest.sequence` and
/// `.reporter`): a random reporter id per process, and numbers that only grow within it (microseconds
/// since the Unix epoch, or one more than the last number when the clock has not moved on). Inventory
/// applies a report of the same reporter only when its number is above the last one applied, so a
/// report that arrives late never overrides a newer one; a report of another reporter (this process
/// after a restart, a replacement appliance) always applies, so clocks of different processes or
/// machines are never compared.
enum PresenceSequence {
    private static let last = Mutex<UInt64>(0)

    /// This process's reporter id.
    static let reporter = UUID().uuidString.lowercased()

    /// The next number, above every number returned before in this process.
    static func next(now: Date = Date()) -> UInt64 {
        let micros = UInt64(max(0, now.timeIntervalSince1970 * 1_000_000))
        return last.withLock { last in
            last = max(last + 1, micros)
            return last
        }
    }
}
