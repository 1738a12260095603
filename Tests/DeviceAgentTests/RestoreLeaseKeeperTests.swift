import DeviceAgentCore
import Foundation
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC
import Testing

@Suite("R7 the restore lease on the device: renewals every third of its time to live, fencing, loss")
struct RestoreLeaseKeeperTests {
    /// A keeper of a lease granted by `coordinator` at the manual clock's time, living `ttlMs` on that clock.
    static func keeper(_ coordinator: FakeCoordinator, clock: ManualClock) async throws -> LeaseKeeper {
        let lease = try await coordinator.requestLease(Rampart_Restore_V1_RequestLeaseRequest()).lease
        return LeaseKeeper(lease: lease, coordinator: coordinator, logger: quietLogger, now: { clock.now })
    }

    /// A coordinator whose leases live `ttlMs` on `clock`.
    static func coordinator(_ clock: ManualClock, ttlMs: Int64 = 9000) -> FakeCoordinator {
        FakeCoordinator(ttlMs: ttlMs, now: { clock.now })
    }

    @Test("R7: the lease is renewed once a third of its time to live (expires_unix_ms - now) has passed, not before")
    func renewsAtAThird() async throws {
        let clock = ManualClock()
        let coordinator = Self.coordinator(clock)
        let keeper = try await Self.keeper(coordinator, clock: clock)
        #expect(await keeper.renewalIntervalMs == 3000)
        try await keeper.report(RestoreAPI.Step.rebooting, detail: "rebooting in 3000 ms")
        clock.advance(2999)
        await keeper.renewIfDue()
        #expect(coordinator.steps == [RestoreAPI.Step.rebooting])
        clock.advance(1)
        await keeper.renewIfDue()
        #expect(coordinator.steps == [RestoreAPI.Step.rebooting, RestoreAPI.Step.rebooting])
        let renewal = try #require(coordinator.calls.last)
        #expect(renewal.token == 41 && renewal.detail == "rebooting in 3000 ms")
        // Right after a renewal nothing is due.
        await keeper.renewIfDue()
        #expect(coordinator.steps.count == 2)
    }

    @Test("R10, R13: a renewal of 'applied' repeats the removed VPN certificates, so none are forgotten")
    func renewalKeepsCertificates() async throws {
        let clock = ManualClock()
        let coordinator = Self.coordinator(clock)
        let keeper = try await Self.keeper(coordinator, clock: clock)
        try await keeper.report(
            RestoreAPI.Step.applied, detail: "12 files", removedVPNCertificates: ["branch-east", "partner-gw"])
        clock.advance(3000)
        await keeper.renewIfDue()
        let calls = coordinator.calls.filter { $0.step == RestoreAPI.Step.applied }
        #expect(calls.count == 2 && calls.allSatisfy { $0.removed == ["branch-east", "partner-gw"] && $0.token == 41 })
    }

    @Test("R7: a stale fencing token on a renewal marks the lease lost; the next step is refused without a call")
    func staleOnRenewal() async throws {
        let clock = ManualClock()
        let coordinator = Self.coordinator(clock)
        let keeper = try await Self.keeper(coordinator, clock: clock)
        coordinator.failNextSteps([RPCError(.failedPrecondition, "stale fencing token 41 (lease now at 42)")])
        clock.advance(3000)
        await keeper.renewIfDue()
        let lost = await keeper.lost
        #expect(lost?.kind == .leaseLost && lost?.message.contains("stale fencing token 41") == true)
        let calls = coordinator.calls.count
        let error = await #expect(throws: RestoreError.self) { try await keeper.report(RestoreAPI.Step.applied) }
        #expect(error?.kind == .leaseLost)
        #expect(coordinator.calls.count == calls)
    }

    @Test("R7: an unreachable coordinator does not lose the lease; a step is retried until it is taken")
    func retriesWhileUnreachable() async throws {
        let clock = ManualClock()
        let coordinator = Self.coordinator(clock)
        let keeper = try await Self.keeper(coordinator, clock: clock)
        coordinator.failNextSteps([RPCError(.unavailable, "no instance"), RPCError(.deadlineExceeded, "too slow")])
        clock.advance(3000)
        await keeper.renewIfDue()
        #expect(await keeper.lost == nil)
        try await keeper.report(RestoreAPI.Step.applying)
        #expect(coordinator.steps == [RestoreAPI.Step.granted, RestoreAPI.Step.applying, RestoreAPI.Step.applying])
    }

    @Test("R7: a step the coordinator never takes before the lease would expire fails as unavailable")
    func givesUpAtExpiry() async throws {
        let clock = ManualClock()
        let coordinator = Self.coordinator(clock, ttlMs: 150)
        let keeper = try await Self.keeper(coordinator, clock: clock)
        coordinator.failNextSteps(Array(repeating: RPCError(.unavailable, "no instance"), count: 10))
        let error = await #expect(throws: RestoreError.self) { try await keeper.report(RestoreAPI.Step.applying) }
        #expect(error?.kind == .coordinatorUnavailable)
    }

    @Test("R9: the rejoin ends the lease; no renewal follows it")
    func rejoinEnds() async throws {
        let clock = ManualClock()
        let coordinator = Self.coordinator(clock)
        let keeper = try await Self.keeper(coordinator, clock: clock)
        try await keeper.rejoined()
        #expect(await keeper.ended)
        clock.advance(10_000)
        await keeper.renewIfDue()
        #expect(coordinator.methods == ["RequestLease", "ReportRejoined"])
    }
}
