import Foundation
import Synchronization

/// The sequence numbers of this process's presence reports (`ReportPresenceRequest.sequence`):
/// microseconds since the Unix epoch, or one more than the last number when the clock has not moved on
/// (or went back), so they only grow. Inventory applies a report only when its number is above the
/// last one applied for the device, so a report that arrives late never overrides a newer one — and a
/// restarted agent, whose clock is ahead of its previous run's numbers, is heard at once.
enum PresenceSequence {
    private static let last = Mutex<UInt64>(0)

    /// The next number, above every number returned before in this process.
    static func next(now: Date = Date()) -> UInt64 {
        let micros = UInt64(max(0, now.timeIntervalSince1970 * 1_000_000))
        return last.withLock { last in
            last = max(last + 1, micros)
            return last
        }
    }
}
