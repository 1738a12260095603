import Foundation
import RampartAPI
import RampartArchive
import RampartProto
import Testing

@testable import RestoreCoordinatorService

/// The restore lease's lifecycle, pure (docs/restore.md, "Leases"): rows, an event and the time in; a
/// decision out. No database, no processes, no waiting: time is whatever the test says.
@Suite("Restore lease lifecycle (pure)")
struct LeaseLifecycleTests {
    static let machine = LeaseLifecycle(timeToLive: .seconds(60))
    /// 2026-09-21T14:13:20Z.
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)

    /// An active lease granted at `t0` (so ending at `t0` + 60 s) on the standalone device of `RestoreChecksTests`.
    static func lease(
        _ id: String = "lease-1", token: UInt64 = 7, state: Rampart_Restore_V1_LeaseState = .active,
        step: String = RestoreAPI.Step.granted, device: String = RestoreChecksTests.deviceId, name: String = "fw-1",
        scope: String? = nil, expiresAt: Date = t0.addingTimeInterval(60)
    ) -> LeaseLifecycle.Lease {
        LeaseLifecycle.Lease(
            id: id, deviceID: device, deviceName: name, role: .standalone, haPairID: "", clusterID: "",
            scope: scope ?? "device:\(device)", fencingToken: token, state: state, step: step,
            archiveFileName: "fw-1_20260921T120000Z.tar", archiveSHA256: String(repeating: "a", count: 64),
            replacementSerial: "SN-NEW", cliUser: "admin", requestedBy: "fw-1", removedVPNCertificates: [],
            grantedAt: t0, expiresAt: expiresAt, endedAt: nil, endReason: "", releasedBy: "")
    }

    static func request(_ situation: RestoreChecks.Situation = RestoreChecksTests.situation(), id: String = "lease-new")
        -> LeaseLifecycle.Request
    {
        LeaseLifecycle.Request(
            leaseId: id, situation: situation, checks: RestoreChecks.checks(situation),
            archiveFileName: "fw-1_20260921T120000Z.tar", archiveSHA256: String(repeating: "b", count: 64),
            cliUser: "admin", caller: situation.device.name)
    }

    static func step(
        _ lease: LeaseLifecycle.Lease, _ step: String, token: UInt64? = nil, at now: Date = t0.addingTimeInterval(1),
        certificates: [String] = []
    ) -> LeaseLifecycle.Decision {
        machine.decide(
            .reportStep(
                lease, token: token ?? lease.fencingToken, step: step, detail: "detail of \(step)",
                removedVPNCertificates: certificates),
            now: now)
    }

    static func rejoin(
        _ lease: LeaseLifecycle.Lease, token: UInt64? = nil, passed: Bool, at now: Date = t0.addingTimeInterval(1)
    ) -> LeaseLifecycle.Decision {
        machine.decide(
            .rejoin(lease, token: token ?? lease.fencingToken, passedCommitPoint: passed, inHaPair: false), now: now)
    }

    /// Applies an accepted (or expiring) decision's lease writes to `lease`, as the database would.
    static func after(_ decision: LeaseLifecycle.Decision, _ lease: LeaseLifecycle.Lease) -> LeaseLifecycle.Lease {
        decision.actions.reduce(lease) { current, action in
            if case .update(let written, let was) = action, was.id == current.id { return written }
            return current
        }
    }

    /// The topics a decision publishes, in order.
    static func topics(_ decision: LeaseLifecycle.Decision) -> [String] {
        decision.actions.compactMap {
            switch $0 {
            case .emit(let topic, _, _), .publish(let topic, _, _): topic
            default: nil
            }
        }
    }

    /// The steps a decision records, in order.
    static func steps(_ decision: LeaseLifecycle.Decision) -> [String] {
        decision.actions.compactMap { if case .recordStep(_, let step, _) = $0 { step } else { nil } }
    }

    /// Every lease write of `decision` is fenced by the token and state it was decided on.
    static func expectFenced(_ decision: LeaseLifecycle.Decision, _ read: LeaseLifecycle.Lease, sourceLocation: SourceLocation = #_sourceLocation) {
        var current = read
        for case .update(let written, let was) in decision.actions where was.id == read.id {
            #expect(was == current, "each write is fenced by the row as it stood", sourceLocation: sourceLocation)
            #expect(written.fencingToken == read.fencingToken && written.id == read.id, sourceLocation: sourceLocation)
            current = written
        }
    }

    // MARK: fencing

    @Test("P1, R7: a report under another fencing token is refused, naming both tokens; nothing is written")
    func staleToken() {
        let lease = Self.lease(token: 7, step: RestoreAPI.Step.rebooting)
        let stale = "stale fencing token 6: lease lease-1 holds token 7; this restore must stop"
        let decisions = [
            Self.step(lease, RestoreAPI.Step.rebooting, token: 6),
            Self.machine.decide(.reportFailed(lease, token: 6, reason: "disk full"), now: Self.t0),
            Self.rejoin(lease, token: 6, passed: true),
            // Even past its time: the token is checked first, and the lease is left to its own device.
            Self.step(lease, RestoreAPI.Step.rebooting, token: 6, at: Self.t0.addingTimeInterval(600)),
        ]
        for decision in decisions {
            #expect(decision.refusal == stale, "\(decision)")
            #expect(decision.actions.isEmpty)
        }
        // A token is never "newer" by being larger either: only the lease's own token is taken.
        #expect(Self.step(lease, RestoreAPI.Step.rebooting, token: 8).refusal?.hasPrefix("stale fencing token 8") == true)
        // A lease released after its device passed the commit point still takes only its own token.
        var released = lease
        released.state = .released
        #expect(Self.rejoin(released, token: 6, passed: true).refusal == stale)
    }

    @Test("P1, R7: a newer lease's token wins: once the first lease expired and a second was granted, the first device is refused under either")
    func newerLeaseWins() throws {
        var first = Self.lease("lease-1", token: 7, step: RestoreAPI.Step.applying)
        // The first device goes silent; the sweep expires its lease.
        let tick = Self.machine.decide(.tick([first]), now: Self.t0.addingTimeInterval(61))
        first = Self.after(tick, first)
        #expect(first.state == .expired)
        // The next restore of the device is granted (with a larger token, from the database).
        let grant = Self.machine.decide(.request(Self.request(), scopeLeases: []), now: Self.t0.addingTimeInterval(62))
        #expect(grant.accepted)
        var second = try #require(grant.lease)
        second.fencingToken = 8
        // The first device wakes up: under its own lease, which has ended…
        let own = Self.step(first, RestoreAPI.Step.applied, at: Self.t0.addingTimeInterval(63))
        #expect(own.refusal?.hasPrefix("lease lease-1 has ended (expired: the device went silent") == true, "\(own)")
        #expect(own.actions.isEmpty)
        // …or with its old token under the new lease: stale. The new device goes on.
        let old = Self.step(second, RestoreAPI.Step.applied, token: 7, at: Self.t0.addingTimeInterval(63))
        #expect(old.refusal == "stale fencing token 7: lease lease-new holds token 8; this restore must stop")
        #expect(Self.step(second, RestoreAPI.Step.applying, at: Self.t0.addingTimeInterval(63)).accepted)
    }

    @Test("P1: every lease write is fenced by the fencing token and state it was decided on")
    func writesAreFenced() {
        let lease = Self.lease(step: RestoreAPI.Step.rebooting)
        let overdue = Self.t0.addingTimeInterval(61)
        let decisions: [(LeaseLifecycle.Decision, LeaseLifecycle.Lease)] = [
            (Self.step(lease, RestoreAPI.Step.rebooting), lease),
            (Self.machine.decide(.reportFailed(lease, token: 7, reason: ""), now: Self.t0), lease),
            (Self.machine.decide(.release(lease, reason: "r", by: "operator"), now: Self.t0), lease),
            (Self.rejoin(lease, passed: true), lease),
            (Self.rejoin(lease, passed: true, at: overdue), lease),
            (Self.machine.decide(.tick([lease]), now: overdue), lease),
        ]
        for (decision, read) in decisions {
            #expect(decision.actions.contains { if case .update = $0 { true } else { false } }, "\(decision)")
            Self.expectFenced(decision, read)
        }
    }

    // MARK: time

    @Test("R7: a lease holds at its end time exactly and expires just after; each report moves its end time")
    func expiry() throws {
        let lease = Self.lease(step: RestoreAPI.Step.applying)
        let end = Self.t0.addingTimeInterval(60)
        #expect(Self.machine.endTime(from: Self.t0) == end)
        #expect(Self.machine.decide(.tick([lease]), now: end).actions.isEmpty, "at its end time it still holds")
        #expect(Self.step(lease, RestoreAPI.Step.applying, at: end).accepted)
        let after = end.addingTimeInterval(0.001)
        let tick = Self.machine.decide(.tick([lease]), now: after)
        #expect(tick.accepted && tick.expired.map(\.id) == ["lease-1"])
        let expired = try #require(tick.expired.first)
        #expect(expired.state == .expired && expired.endedAt == after)
        #expect(expired.step == RestoreAPI.Step.applying, "an expiry leaves the last step as the device reported it")
        #expect(expired.endReason == "the device went silent: no report since 2026-09-21T14:14:20Z")
        #expect(Self.steps(tick) == ["expired"] && Self.topics(tick) == ["restore.lease.expired"])
        #expect(tick.actions.contains(.emit(topic: "restore.lease.expired", leaseId: "lease-1", attributes: ["reason": expired.endReason])))

        // A report 30 s in renews it: 60 s from the report.
        let renewal = Self.step(lease, RestoreAPI.Step.applying, at: Self.t0.addingTimeInterval(30))
        let renewed = Self.after(renewal, lease)
        #expect(renewed.expiresAt == Self.t0.addingTimeInterval(90))
        #expect(Self.machine.decide(.tick([renewed]), now: Self.t0.addingTimeInterval(61)).actions.isEmpty)
        #expect(Self.machine.decide(.tick([renewed]), now: Self.t0.addingTimeInterval(90)).actions.isEmpty)
        #expect(Self.machine.decide(.tick([renewed]), now: Self.t0.addingTimeInterval(90.001)).expired.count == 1)
        // The time to live is kept to its fraction.
        #expect(LeaseLifecycle(timeToLive: .milliseconds(1500)).endTime(from: Self.t0) == Self.t0.addingTimeInterval(1.5))
        // Only active leases expire.
        var ended = lease
        ended.state = .released
        #expect(Self.machine.decide(.tick([ended]), now: after.addingTimeInterval(3600)).actions.isEmpty)
    }

    @Test("R7: a report after the end time is refused and expires the lease; the same report in time renews it")
    func lateReport() {
        let lease = Self.lease(step: RestoreAPI.Step.applying)
        let late = Self.step(lease, RestoreAPI.Step.applied, at: Self.t0.addingTimeInterval(60.5))
        #expect(late.refusal == "lease lease-1 expired: the device was silent too long; start again")
        #expect(late.lease?.state == .expired && late.expired.map(\.id) == ["lease-1"])
        #expect(Self.topics(late) == ["restore.lease.expired"], "the expiry is recorded; the step is not")
        let failed = Self.machine.decide(.reportFailed(lease, token: 7, reason: "x"), now: Self.t0.addingTimeInterval(61))
        #expect(failed.refusal == late.refusal && failed.expired.count == 1)
        // A forced release takes an active lease even past its time (the sweep had not got to it).
        let released = Self.machine.decide(.release(lease, reason: "r", by: "operator"), now: Self.t0.addingTimeInterval(61))
        #expect(released.accepted && released.lease?.state == .released)
    }

    // MARK: scope and order

    @Test("R7: one active lease per HA pair: the peer's lease refuses the second peer, naming it; once past its time it is expired and the second granted")
    func oneLeasePerPair() throws {
        var situation = RestoreChecksTests.situation()
        situation.device.haPairID = "pair-1"
        situation.device.role = .haPrimary
        situation.manifest.role = .haPrimary
        var pair = Rampart_Inventory_V1_HaPair()
        pair.id = "pair-1"
        pair.name = "hp"
        pair.primaryID = situation.device.id
        pair.secondaryID = "peer-id"
        situation.pair = pair
        let request = Self.request(situation)
        let peer = Self.lease(
            "lease-peer", token: 3, step: RestoreAPI.Step.rebooting, device: "peer-id", name: "fw-1b", scope: "ha-pair:pair-1")
        #expect(RestoreChecks.refusals(situation).isEmpty)

        let refused = Self.machine.decide(.request(request, scopeLeases: [peer]), now: Self.t0.addingTimeInterval(10))
        let reason =
            "its HA peer fw-1b is being restored (step rebooting): the second peer starts only after the first has finished, reboot included (R7)"
        #expect(refused.refusal == "restore of fw-1 refused: " + reason)
        #expect(refused.lease == nil)
        #expect(
            refused.actions == [
                .recordRequest(
                    deviceId: situation.device.id, replacementSerial: "SN-NEW", archiveFileName: request.archiveFileName,
                    granted: false, leaseId: nil, reasons: [reason]),
                .publish(
                    topic: "restore.lease.refused", subject: situation.device.id,
                    attributes: ["device_name": "fw-1", "replacement_serial": "SN-NEW", "reasons": reason, "caller": "fw-1"]),
            ])
        // CheckRestore's order check says the same.
        #expect(LeaseLifecycle.order(situation, scopeLeases: [peer], at: Self.t0.addingTimeInterval(10)).reasons == [reason])

        // The peer's device went silent: its lease is expired first, and the scope is free.
        let now = Self.t0.addingTimeInterval(61)
        let granted = Self.machine.decide(.request(request, scopeLeases: [peer]), now: now)
        #expect(granted.accepted && granted.expired.map(\.id) == ["lease-peer"])
        let lease = try #require(granted.lease)
        #expect(lease.scope == "ha-pair:pair-1" && lease.state == .active && lease.step == RestoreAPI.Step.granted)
        #expect(lease.fencingToken == 0, "the database's sequence gives the token")
        #expect(lease.grantedAt == now && lease.expiresAt == Self.machine.endTime(from: now))
        #expect(lease.id == "lease-new" && lease.requestedBy == "fw-1" && lease.replacementSerial == "SN-NEW")
        #expect(
            Array(granted.actions.suffix(4)) == [
                .insert(lease),
                .recordRequest(
                    deviceId: situation.device.id, replacementSerial: "SN-NEW", archiveFileName: request.archiveFileName,
                    granted: true, leaseId: "lease-new", reasons: []),
                .recordStep(leaseId: "lease-new", step: RestoreAPI.Step.granted, detail: "replacement SN-NEW"),
                .emit(
                    topic: "restore.lease.granted", leaseId: "lease-new",
                    attributes: ["replacement_serial": "SN-NEW", "archive": request.archiveFileName, "caller": "fw-1"]),
            ])
        #expect(Self.topics(granted) == ["restore.lease.expired", "restore.lease.granted"])
    }

    @Test("R8: one lease per cluster, control node first: a data node waits while the control node is not connected, and while another node restores")
    func clusterOrder() {
        var situation = RestoreChecksTests.situation()
        situation.device.clusterID = "cluster-1"
        situation.device.role = .clusterData
        situation.manifest.role = .clusterData
        var cluster = Rampart_Inventory_V1_Cluster()
        cluster.id = "cluster-1"
        cluster.name = "cl"
        cluster.nodes = [
            Rampart_Inventory_V1_ClusterNode.with { $0.deviceID = "control-id"; $0.role = .clusterControl },
            Rampart_Inventory_V1_ClusterNode.with { $0.deviceID = situation.device.id; $0.role = .clusterData },
        ]
        situation.cluster = cluster
        var control = Rampart_Inventory_V1_Device()
        control.id = "control-id"
        control.name = "cl-n1"
        control.role = .clusterControl
        control.connected = false
        situation.clusterDevices = [control, situation.device]
        #expect(situation.scope == "cluster:cluster-1")
        #expect(RestoreChecks.refusals(situation).isEmpty)

        let waiting = Self.machine.decide(.request(Self.request(situation), scopeLeases: []), now: Self.t0)
        #expect(
            waiting.refusal
                == "restore of fw-1 refused: control node cl-n1 of cluster cl is not connected: restore the control node first and wait until it rejoins (R8)")
        #expect(!waiting.actions.contains { if case .insert = $0 { true } else { false } })

        // The control node rejoined (connected); another node's restore holds the cluster.
        situation.clusterDevices[0].connected = true
        let other = Self.lease(
            "lease-n3", token: 4, step: RestoreAPI.Step.applying, device: "n3-id", name: "cl-n3", scope: "cluster:cluster-1")
        let busy = Self.machine.decide(.request(Self.request(situation), scopeLeases: [other]), now: Self.t0)
        #expect(busy.refusal?.contains("node cl-n3 of its cluster is being restored (step applying): one node at a time") == true)
        let granted = Self.machine.decide(.request(Self.request(situation), scopeLeases: []), now: Self.t0)
        #expect(granted.accepted && granted.lease?.scope == "cluster:cluster-1" && granted.lease?.clusterID == "cluster-1")
    }

    @Test("R1: every check's reasons, then the order's, in one refusal naming the device; a device being restored is its own scope")
    func checksThenOrder() {
        var situation = RestoreChecksTests.situation()
        situation.facts.model = "FPR-1010"
        situation.device.connected = true
        let own = Self.lease(step: RestoreAPI.Step.applying)
        let refused = Self.machine.decide(.request(Self.request(situation), scopeLeases: [own]), now: Self.t0)
        let reasons = RestoreChecks.refusals(situation) + ["fw-1 is already being restored (lease lease-1, step applying)"]
        #expect(reasons.count == 3)
        #expect(refused.refusal == "restore of fw-1 refused: " + reasons.joined(separator: "; "))
        #expect(refused.actions.contains { if case .recordRequest(_, _, _, false, nil, reasons) = $0 { true } else { false } })
    }

    // MARK: steps

    @Test("R1, R9: steps go forward — applying, applied, rebooting; the same step again renews without recording; an earlier step or a name that is no step is refused")
    func stepOrder() {
        var lease = Self.lease()
        var now = Self.t0
        for step in [RestoreAPI.Step.applying, RestoreAPI.Step.applied, RestoreAPI.Step.rebooting] {
            now.addTimeInterval(5)
            let decision = Self.step(lease, step, at: now, certificates: step == RestoreAPI.Step.applied ? ["vpn-a"] : [])
            #expect(decision.accepted, "\(step): \(decision)")
            #expect(Self.steps(decision) == [step] && Self.topics(decision) == ["restore.step"])
            #expect(decision.actions.contains(.emit(topic: "restore.step", leaseId: "lease-1", attributes: ["detail": "detail of \(step)"])))
            lease = Self.after(decision, lease)
            #expect(lease.step == step && lease.expiresAt == Self.machine.endTime(from: now))
        }
        #expect(lease.removedVPNCertificates == ["vpn-a"], "kept when a later step names none")

        // A renewal: the same step, recorded once, its end time moved.
        let renewal = Self.step(lease, RestoreAPI.Step.rebooting, at: now.addingTimeInterval(20))
        #expect(renewal.accepted && Self.steps(renewal).isEmpty && Self.topics(renewal).isEmpty)
        #expect(renewal.lease?.expiresAt == Self.machine.endTime(from: now.addingTimeInterval(20)))

        // Backwards, or not a step at all: refused, nothing written.
        for step in [RestoreAPI.Step.applied, RestoreAPI.Step.applying, RestoreAPI.Step.granted] {
            let back = Self.step(lease, step, at: now)
            #expect(
                back.refusal
                    == "step \(step) is out of order: lease lease-1 is at step rebooting; a device reports granted, applying, applied, rebooting, in that order")
            #expect(back.actions.isEmpty)
        }
        for step in [RestoreAPI.Step.rejoined, "dancing"] {
            let unknown = Self.step(Self.lease(), step)
            #expect(unknown.refusal?.hasPrefix("\(step) is not a step of a restore") == true, "\(unknown)")
            #expect(unknown.actions.isEmpty)
        }
        // A later step may skip one (a restore that removed no certificate may go from applying to rebooting).
        #expect(Self.step(Self.lease(step: RestoreAPI.Step.applying), RestoreAPI.Step.rebooting).accepted)
    }

    // MARK: ends

    @Test("R9, R13: released before the commit point, the rejoin is refused; released after it (rebooting recorded), it is accepted and says how the lease had ended")
    func releaseAroundTheCommitPoint() throws {
        let active = Self.lease(step: RestoreAPI.Step.rebooting)
        let release = Self.machine.decide(.release(active, reason: "took too long", by: "operator"), now: Self.t0.addingTimeInterval(5))
        #expect(release.accepted)
        let released = try #require(release.lease)
        #expect(released.state == .released && released.step == "released" && released.releasedBy == "operator")
        #expect(released.endReason == "took too long" && released.endedAt == Self.t0.addingTimeInterval(5))
        #expect(Self.steps(release) == ["released"])
        #expect(release.actions.contains(.emit(topic: "restore.lease.released", leaseId: "lease-1", attributes: ["reason": "took too long", "by": "operator"])))
        // Released twice: refused.
        #expect(
            Self.machine.decide(.release(released, reason: "again", by: "operator"), now: Self.t0).refusal
                == "lease lease-1 is not active (released)")

        // Before the commit point: every report is refused.
        let ended = "lease lease-1 has ended (released: took too long)"
        #expect(Self.rejoin(released, passed: false).refusal == ended)
        #expect(Self.step(released, RestoreAPI.Step.rebooting).refusal == ended)
        #expect(Self.rejoin(released, passed: false).actions.isEmpty)

        // After it: the rejoin is recorded, and the checklist opens with the removed certificates.
        var withCertificates = released
        withCertificates.removedVPNCertificates = ["vpn-a"]
        let rejoin = Self.machine.decide(
            .rejoin(withCertificates, token: 7, passedCommitPoint: true, inHaPair: true), now: Self.t0.addingTimeInterval(30))
        #expect(rejoin.accepted)
        let rejoined = try #require(rejoin.lease)
        #expect(rejoined.state == .rejoined && rejoined.step == RestoreAPI.Step.rejoined && rejoined.releasedBy == "")
        let reason = "rejoined after the lease was released past the commit point (took too long)"
        #expect(rejoined.endReason == reason)
        #expect(
            Array(rejoin.actions.suffix(3)) == [
                .recordStep(leaseId: "lease-1", step: RestoreAPI.Step.rejoined, detail: reason),
                .emit(topic: "restore.lease.rejoined", leaseId: "lease-1", attributes: ["reason": reason, "by": ""]),
                .openChecklist(leaseId: "lease-1", certificates: ["vpn-a"], inHaPair: true),
            ])
        Self.expectFenced(rejoin, withCertificates)
        // Its other reports stay refused.
        #expect(Self.step(released, RestoreAPI.Step.rebooting).refusal == ended)
    }

    @Test("R9, R13: an active lease ends rejoined with no reason and opens the checklist; a second rejoin is refused")
    func rejoin() throws {
        let lease = Self.lease(step: RestoreAPI.Step.rebooting)
        let decision = Self.rejoin(lease, passed: true, at: Self.t0.addingTimeInterval(40))
        #expect(decision.accepted)
        let rejoined = try #require(decision.lease)
        #expect(rejoined.state == .rejoined && rejoined.endReason.isEmpty && rejoined.endedAt == Self.t0.addingTimeInterval(40))
        #expect(
            Array(decision.actions.dropFirst()) == [
                .recordStep(leaseId: "lease-1", step: RestoreAPI.Step.rejoined, detail: ""),
                .emit(topic: "restore.lease.rejoined", leaseId: "lease-1", attributes: [:]),
                .openChecklist(leaseId: "lease-1", certificates: [], inHaPair: false),
            ])
        // An active lease rejoins whatever its step (the device said it is back; inventory shows it connected).
        #expect(Self.rejoin(Self.lease(step: RestoreAPI.Step.applied), passed: false).accepted)
        #expect(Self.rejoin(rejoined, passed: true).refusal == "lease lease-1 has ended (rejoined)")
    }

    @Test("R7, R9: expired after the commit point, the late rejoin is accepted — also when nothing had expired it yet; before it, refused")
    func expiryAroundTheCommitPoint() {
        let lease = Self.lease(step: RestoreAPI.Step.rebooting)
        let late = Self.t0.addingTimeInterval(120)
        // Not yet expired by anyone: expired, then rejoined, in one decision.
        let decision = Self.rejoin(lease, passed: true, at: late)
        #expect(decision.accepted && decision.lease?.state == .rejoined)
        #expect(Self.topics(decision) == ["restore.lease.expired", "restore.lease.rejoined"])
        #expect(
            decision.lease?.endReason
                == "rejoined after the lease was expired past the commit point (the device went silent: no report since 2026-09-21T14:14:20Z)")
        Self.expectFenced(decision, lease)
        // Expired by the sweep first: the same end.
        let expired = Self.after(Self.machine.decide(.tick([lease]), now: Self.t0.addingTimeInterval(61)), lease)
        let afterSweep = Self.rejoin(expired, passed: true, at: late)
        #expect(afterSweep.lease?.endReason == decision.lease?.endReason && Self.topics(afterSweep) == ["restore.lease.rejoined"])
        // Before the commit point: refused; a lease found past its time is expired all the same.
        let refused = Self.rejoin(Self.lease(step: RestoreAPI.Step.applied), passed: false, at: late)
        #expect(refused.refusal == "lease lease-1 expired: the device was silent too long; start again")
        #expect(Self.topics(refused) == ["restore.lease.expired"])
        #expect(Self.rejoin(expired, passed: false, at: late).refusal?.hasPrefix("lease lease-1 has ended (expired: the device went silent") == true)
    }

    @Test("R9: a failure report ends the lease as failed with its reason ('failed on the device' when it gives none); later reports are refused")
    func failure() throws {
        let lease = Self.lease(step: RestoreAPI.Step.applying)
        let failed = Self.machine.decide(.reportFailed(lease, token: 7, reason: "staging: disk full"), now: Self.t0.addingTimeInterval(3))
        #expect(failed.accepted)
        let ended = try #require(failed.lease)
        #expect(ended.state == .failed && ended.step == "failed" && ended.endReason == "staging: disk full" && ended.releasedBy == "")
        #expect(Self.steps(failed) == ["failed"])
        #expect(failed.actions.contains(.emit(topic: "restore.lease.failed", leaseId: "lease-1", attributes: ["reason": "staging: disk full", "by": ""])))
        let silent = Self.machine.decide(.reportFailed(lease, token: 7, reason: ""), now: Self.t0)
        #expect(silent.lease?.endReason == "failed on the device")
        let ended2 = "lease lease-1 has ended (failed: staging: disk full)"
        #expect(Self.step(ended, RestoreAPI.Step.applied).refusal == ended2)
        #expect(Self.machine.decide(.reportFailed(ended, token: 7, reason: "again"), now: Self.t0).refusal == ended2)
        #expect(Self.rejoin(ended, passed: true).refusal == ended2, "a failed restore wrote nothing: no rejoin")
    }
}
