import Testing

@testable import InventoryService

/// Presence that follows the broker's liveness, decided poll by poll (R12: a dead device must be seen as
/// disconnected for its replacement to be restored).
@Suite("R12: presence follows the bus's liveness (LivenessTracker)")
struct LivenessTrackerTests {
    let expiry: Int64 = 7_500
    let started: Int64 = 1_000_000

    @Test("R12: a device live at one poll and gone at the next is disconnected at once")
    func droppedIsDisconnected() {
        var tracker = LivenessTracker()
        let now = started + 60_000
        let first = tracker.observe(
            live: ["a", "b"], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": true, "b": true], now: now)
        #expect(first == .init())
        let second = tracker.observe(
            live: ["b"], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": true, "b": true], now: now + 1_250)
        #expect(second.disconnected == ["a"])
        #expect(second.connected.isEmpty)
    }

    @Test("R12: a device recorded connected but never live is disconnected only after one expiry")
    func neverSeenWaitsOneExpiry() {
        var tracker = LivenessTracker()
        let now = started + 60_000
        let recorded = ["a": true]
        #expect(tracker.observe(live: [], brokerStartedAt: started, expiryMs: expiry, recorded: recorded, now: now).disconnected.isEmpty)
        #expect(
            tracker.observe(live: [], brokerStartedAt: started, expiryMs: expiry, recorded: recorded, now: now + expiry - 1)
                .disconnected.isEmpty)
        #expect(
            tracker.observe(live: [], brokerStartedAt: started, expiryMs: expiry, recorded: recorded, now: now + expiry)
                .disconnected == ["a"])
    }

    @Test("R12: an agent that reported itself before its service registered is not disconnected when it shows up in time")
    func lateRegistrationIsNotAFlap() {
        var tracker = LivenessTracker()
        let now = started + 60_000
        _ = tracker.observe(live: [], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": true], now: now)
        let later = tracker.observe(live: ["a"], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": true], now: now + 1_250)
        #expect(later == .init())
    }

    @Test("R12: just after a broker restart nothing is disconnected until instances had time to register again")
    func brokerRestartIsNoMassDisconnect() {
        var tracker = LivenessTracker()
        let now = started + 60_000
        let recorded = ["a": true, "b": true]
        _ = tracker.observe(live: ["a", "b"], brokerStartedAt: started, expiryMs: expiry, recorded: recorded, now: now)
        // The broker restarted 1 s ago and only `a` has registered with it yet.
        let restarted = now + 2_000
        let first = tracker.observe(live: ["a"], brokerStartedAt: restarted - 1_000, expiryMs: expiry, recorded: recorded, now: restarted)
        #expect(first == .init())
        let second = tracker.observe(
            live: ["a", "b"], brokerStartedAt: restarted - 1_000, expiryMs: expiry, recorded: recorded, now: restarted + 1_250)
        #expect(second == .init())
    }

    @Test("R12: a device that never comes back after a broker restart is disconnected once the broker has been up one expiry")
    func brokerRestartThenStillGone() {
        var tracker = LivenessTracker()
        let recorded = ["a": true]
        let restartedAt = started
        #expect(
            tracker.observe(live: [], brokerStartedAt: restartedAt, expiryMs: expiry, recorded: recorded, now: restartedAt + 500)
                .disconnected.isEmpty)
        #expect(
            tracker.observe(live: [], brokerStartedAt: restartedAt, expiryMs: expiry, recorded: recorded, now: restartedAt + expiry)
                .disconnected.isEmpty)
        #expect(
            tracker.observe(live: [], brokerStartedAt: restartedAt, expiryMs: expiry, recorded: recorded, now: restartedAt + expiry + 500)
                .disconnected == ["a"])
    }

    @Test("R12: a device that comes back is connected; an operator's override on a live device is left alone")
    func comingBackAndOverride() {
        var tracker = LivenessTracker()
        let now = started + 60_000
        _ = tracker.observe(live: [], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": false, "b": false], now: now)
        let back = tracker.observe(
            live: ["a"], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": false, "b": false], now: now + 1_250)
        #expect(back.connected == ["a"])
        // `a` live all along, then set disconnected by hand: no change is seen, nothing is recorded.
        let override = tracker.observe(
            live: ["a"], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": false, "b": false], now: now + 2_500)
        #expect(override == .init())
    }

    @Test("R12: after a failed poll the next one starts afresh (a device gone meanwhile waits one expiry)")
    func failedPollStartsAfresh() {
        var tracker = LivenessTracker()
        let now = started + 60_000
        _ = tracker.observe(live: ["a"], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": true], now: now)
        tracker.pollFailed()
        #expect(
            tracker.observe(live: [], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": true], now: now + 5_000)
                .disconnected.isEmpty)
        #expect(
            tracker.observe(live: [], brokerStartedAt: started, expiryMs: expiry, recorded: ["a": true], now: now + 5_000 + expiry)
                .disconnected == ["a"])
    }
}
