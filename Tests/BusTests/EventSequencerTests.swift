import Foundation
import RampartBus
import RampartProto
import Testing

private func event(_ seq: UInt64, _ topic: String = "backup.job.succeeded") -> Rampart_Bus_V1_Event {
    var event = Rampart_Bus_V1_Event()
    event.seq = seq
    event.topic = topic
    event.subject = "subject-\(seq)"
    return event
}

/// The sequence numbers delivered by `actions`, in order.
private func delivered(_ actions: [EventSequencer.Action]) -> [UInt64] {
    actions.compactMap { if case .deliver(let event) = $0 { event.seq } else { nil } }
}

@Suite("Events: exactly once, in order (P3)")
struct EventSequencerTests {
    @Test("P3: live events that follow the position are delivered in order and advance it")
    func inOrder() {
        var sequencer = EventSequencer(position: 10, topicPrefix: "")
        #expect(sequencer.live(event(11)) == [.deliver(event(11))])
        #expect(sequencer.live(event(12)) == [.deliver(event(12))])
        #expect(sequencer.live(event(13)) == [.deliver(event(13))])
        #expect(sequencer.position == 13)
    }

    @Test("P3: an event at or below the position (a duplicate) is ignored")
    func duplicatesIgnored() {
        var sequencer = EventSequencer(position: 0, topicPrefix: "")
        _ = sequencer.live(event(1))
        _ = sequencer.live(event(2))
        #expect(sequencer.live(event(2)).isEmpty)
        #expect(sequencer.live(event(1)).isEmpty)
        #expect(sequencer.position == 2)
        #expect(sequencer.live(event(3)) == [.deliver(event(3))], "a duplicate must not start a replay")
    }

    @Test("P3: a gap asks for one replay from the position and delivers nothing past the gap")
    func gapAsksForReplay() {
        var sequencer = EventSequencer(position: 4, topicPrefix: "")
        #expect(sequencer.live(event(6)) == [.replay(since: 4)])
        #expect(sequencer.position == 4)
    }

    @Test("P3: while a replay is pending, further gaps, live events and heartbeats ask for no second replay")
    func noSecondReplayWhilePending() {
        var sequencer = EventSequencer(position: 4, topicPrefix: "")
        _ = sequencer.live(event(6))
        #expect(sequencer.live(event(7)).isEmpty)
        #expect(sequencer.live(event(9)).isEmpty)
        #expect(sequencer.heartbeat(lastSeq: 20).isEmpty)
        #expect(sequencer.position == 4)
    }

    @Test("P3: while a replay is pending, even the next event in sequence waits for the replay (it will be in it)")
    func nextEventWaitsForReplay() {
        var sequencer = EventSequencer(position: 4, topicPrefix: "")
        _ = sequencer.heartbeat(lastSeq: 5)
        #expect(sequencer.live(event(5)).isEmpty)
        #expect(delivered(sequencer.replayed([event(5)], lastSeq: 5, complete: true)) == [5])
    }

    @Test("P3: the replay fills the gap in order; then live events continue without another replay")
    func replayThenLive() {
        var sequencer = EventSequencer(position: 4, topicPrefix: "")
        _ = sequencer.live(event(7))
        let filled = sequencer.replayed([event(5), event(6), event(7)], lastSeq: 7, complete: true)
        #expect(delivered(filled) == [5, 6, 7])
        #expect(sequencer.position == 7)
        #expect(sequencer.live(event(8)) == [.deliver(event(8))])
        #expect(sequencer.live(event(7)).isEmpty, "already delivered by the replay")
    }

    @Test("P3: events in a replay that were already handled are not delivered again")
    func replayOverlapNotRedelivered() {
        var sequencer = EventSequencer(position: 0, topicPrefix: "")
        _ = sequencer.live(event(1))
        _ = sequencer.live(event(3))
        #expect(delivered(sequencer.replayed([event(1), event(2), event(3)], lastSeq: 3, complete: true)) == [2, 3])
    }

    @Test("P3: a complete replay moves the position to the journal's end even past the last matching event")
    func completeReplayJumpsToEnd() {
        var sequencer = EventSequencer(position: 0, topicPrefix: "backup.")
        _ = sequencer.heartbeat(lastSeq: 50)
        #expect(delivered(sequencer.replayed([event(3)], lastSeq: 50, complete: true)) == [3])
        #expect(sequencer.position == 50)
        #expect(sequencer.live(event(51)) == [.deliver(event(51))])
    }

    @Test("P3: an incomplete replay delivers what it got and asks for the rest from there")
    func incompleteReplayAsksAgain() {
        var sequencer = EventSequencer(position: 0, topicPrefix: "")
        _ = sequencer.heartbeat(lastSeq: 5)
        let first = sequencer.replayed([event(1), event(2)], lastSeq: 5, complete: false)
        #expect(first == [.deliver(event(1)), .deliver(event(2)), .replay(since: 2)])
        #expect(sequencer.position == 2, "an incomplete answer must not jump to the journal's end")
        let second = sequencer.replayed([event(3), event(4), event(5)], lastSeq: 5, complete: true)
        #expect(delivered(second) == [3, 4, 5])
        #expect(sequencer.position == 5)
    }

    @Test("P3: a live event outside the topic prefix advances the position without being delivered")
    func prefixFiltering() {
        var sequencer = EventSequencer(position: 0, topicPrefix: "backup.")
        #expect(sequencer.live(event(1, "inventory.device.connected")).isEmpty)
        #expect(sequencer.position == 1)
        #expect(sequencer.live(event(2, "backup.job.queued")) == [.deliver(event(2, "backup.job.queued"))])
        #expect(sequencer.live(event(3, "links.exported")).isEmpty)
        #expect(
            sequencer.live(event(4, "backup.stored")) == [.deliver(event(4, "backup.stored"))], "no gap: 3 was handled")
    }

    @Test("P3: replayed events outside the topic prefix are skipped but still advance the position")
    func prefixFilteringInReplay() {
        var sequencer = EventSequencer(position: 0, topicPrefix: "backup.")
        _ = sequencer.live(event(3, "backup.x"))
        let actions = sequencer.replayed(
            [event(1, "inventory.a"), event(2, "backup.job.started"), event(3, "backup.x")], lastSeq: 3, complete: false
        )
        #expect(delivered(actions) == [2, 3])
        #expect(actions.last == .replay(since: 3))
    }

    @Test("P3: a heartbeat beyond the position asks for a replay; one at the position does not")
    func heartbeatBeyondPosition() {
        var sequencer = EventSequencer(position: 8, topicPrefix: "")
        #expect(sequencer.heartbeat(lastSeq: 8).isEmpty)
        #expect(sequencer.heartbeat(lastSeq: 3).isEmpty)
        #expect(sequencer.heartbeat(lastSeq: 9) == [.replay(since: 8)])
    }

    @Test("P3: after a replay is answered, a new gap asks for a new replay")
    func replayAgainAfterAnswer() {
        var sequencer = EventSequencer(position: 0, topicPrefix: "")
        _ = sequencer.live(event(2))
        _ = sequencer.replayed([event(1), event(2)], lastSeq: 2, complete: true)
        #expect(sequencer.live(event(5)) == [.replay(since: 2)])
    }
}
