import DeviceAgentCore
import Foundation
import RampartAPI
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC
import Synchronization
import Testing

@Suite("R1, R7, R9 the restore session under a lease (in-process coordinator)")
struct RestoreSessionTests {
    static let fileName = "fw-edge-01_20250131T120000Z.tar"

    @Test(
        "R1, R9: lease, applying, applied with the removed certificates, rebooting, logout, reboot, rejoin — in that order"
    )
    func fullSequence() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let (archive, replacement) = (stage.archive, stage.replacement)
        let coordinator = FakeCoordinator(ttlMs: 300)
        let console = CapturingConsole()
        let booted = BootRecorder()
        let started = unixMillis()
        let outcome = await session(replacement, coordinator: coordinator, console: console, rebootDelayMs: 1000).run(
            .local(fileName: Self.fileName), boot: fakeBoot(booted))
        guard case .restored(let restored) = outcome else {
            Issue.record("not restored: \(console.text)")
            return
        }
        #expect(restored.rejoined && restored.device.id == originalDeviceId)
        #expect(restored.folder.facts.managementIp == "10.0.0.11" && restored.folder.facts.serial == "JAD9999Z007")

        // What the lease request carried.
        let request = try #require(coordinator.requests.first)
        #expect(request.manifestJson == (try BackupArchive.read(archive)).manifestJSON)
        #expect(request.archiveSha256 == sha256Hex(archive) && request.archiveFileName == Self.fileName)
        #expect(request.cliUser == "alice")
        #expect(request.facts.serial == "JAD9999Z007" && request.facts.model == "FPR-3120")
        #expect(request.facts.software.version == "7.4.1" && request.facts.software.patch == 2)
        #expect(request.facts.networkModules == 1 && request.facts.interfaces == ["1GbE-RJ45": 8, "10GbE-SFP+": 4])

        // The order of the calls, renewals (repeats of the current step) aside.
        var collapsed: [String] = []
        for call in coordinator.calls {
            let name = call.method == "ReportStep" ? call.step : call.method
            if collapsed.last != name { collapsed.append(name) }
        }
        #expect(collapsed == ["RequestLease", "applying", "applied", "rebooting", "ReportRejoined"], "\(collapsed)")
        #expect(coordinator.calls.dropFirst().allSatisfy { $0.token == 41 })
        let applied = try #require(coordinator.calls.first { $0.step == RestoreAPI.Step.applied })
        #expect(applied.removed == ["added-after-backup", "branch-east", "branch-west", "partner-gw"])

        // "rebooting" was recorded before the reboot (renewals while rebooting: LeaseKeeperTests, and the
        // process test, where no other test competes for the same threads).
        #expect(coordinator.steps.contains(RestoreAPI.Step.rebooting))
        // Boot (presence) came before the rejoin, after the reboot delay.
        let rejoinedAt = try #require(coordinator.calls.last { $0.method == "ReportRejoined" }).at
        let bootedAt = booted.at
        #expect(bootedAt >= started + 1000 && bootedAt <= rejoinedAt)

        let text = console.text
        for line in [
            "archive verified", "lease lease-1 granted", "management IP 10.0.0.11 (R9)",
            "re-encrypted under a newly generated device key (R11)",
            "re-enroll: added-after-backup, branch-east, branch-west, partner-gw", "user alice is logged out",
            "ended (rejoined)",
        ] {
            #expect(text.contains(line), "'\(line)' missing from:\n\(text)")
        }
    }

    @Test("R1: a refused lease prints the coordinator's message and writes nothing")
    func refused() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let replacement = stage.replacement
        let before = snapshot(replacement.path)
        let coordinator = FakeCoordinator(
            refusal: RPCError(
                .failedPrecondition,
                "HA pair ha-dc1 is already restoring fw-ha-b (lease 9); restore one peer at a time (R7)"))
        let console = CapturingConsole()
        let outcome = await session(replacement, coordinator: coordinator, console: console).run(
            .local(fileName: Self.fileName), boot: fakeBoot(BootRecorder()))
        guard case .notRestored(let error) = outcome else {
            Issue.record("restored despite a refusal")
            return
        }
        #expect(error.kind == .refused(.failedPrecondition))
        #expect(
            console.text.contains(
                "HA pair ha-dc1 is already restoring fw-ha-b (lease 9); restore one peer at a time (R7)"))
        #expect(console.text.contains("nothing was written"))
        #expect(coordinator.methods == ["RequestLease"])
        #expect(snapshot(replacement.path) == before)
    }

    @Test("R7: a stale fencing token before the write aborts the restore; nothing is written")
    func staleBeforeWrite() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let replacement = stage.replacement
        let before = snapshot(replacement.path)
        let coordinator = FakeCoordinator(staleAtStep: RestoreAPI.Step.applying)
        let console = CapturingConsole()
        let outcome = await session(replacement, coordinator: coordinator, console: console).run(
            .local(fileName: Self.fileName), boot: fakeBoot(BootRecorder()))
        guard case .notRestored(let error) = outcome else {
            Issue.record("restored with a stale token")
            return
        }
        #expect(error.kind == .leaseLost)
        #expect(console.text.contains("stale fencing token"))
        #expect(!coordinator.methods.contains("ReportRejoined"))
        #expect(snapshot(replacement.path) == before)
    }

    @Test("R7: a stale fencing token when reporting 'applied' puts the previous configuration back; no reboot")
    func staleAfterSwap() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let replacement = stage.replacement
        let before = snapshot(replacement.path)
        let coordinator = FakeCoordinator(staleAtStep: RestoreAPI.Step.applied)
        let console = CapturingConsole()
        let booted = BootRecorder()
        let outcome = await session(replacement, coordinator: coordinator, console: console).run(
            .local(fileName: Self.fileName), boot: fakeBoot(booted))
        guard case .notRestored(let error) = outcome else {
            Issue.record("restored with a stale token")
            return
        }
        #expect(error.kind == .leaseLost && error.message.contains("put back"))
        #expect(booted.at == 0, "the device rebooted")
        #expect(!coordinator.steps.contains(RestoreAPI.Step.rebooting))
        #expect(snapshot(replacement.path) == before)
    }

    @Test("R9: a failure while staging reports the restore failed (ending the lease) and writes nothing")
    func stagingFailure() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let replacement = stage.replacement
        let before = snapshot(replacement.path)
        let coordinator = FakeCoordinator()
        let console = CapturingConsole()
        let hooks = ConfigSwap.Hooks(afterStaging: { throw AgentError("no space left on device (simulated)") })
        let outcome = await session(replacement, coordinator: coordinator, console: console, hooks: hooks).run(
            .local(fileName: Self.fileName), boot: fakeBoot(BootRecorder()))
        guard case .notRestored(let error) = outcome else {
            Issue.record("restored despite the failure")
            return
        }
        #expect(error.kind == .apply)
        #expect(coordinator.methods == ["RequestLease", "ReportStep", "ReportFailed"])
        #expect(coordinator.calls.last?.detail.contains("no space left") == true)
        #expect(snapshot(replacement.path) == before)
    }

    @Test("R2: a missing local backup names what the folder holds; an unreachable coordinator writes nothing")
    func missingAndUnreachable() async throws {
        let stage = try await PlacedBackup.make(as: Self.fileName)
        defer { stage.remove() }
        let replacement = stage.replacement
        let before = snapshot(replacement.path)
        let console = CapturingConsole()
        let missing = await session(replacement, coordinator: FakeCoordinator(), console: console).run(
            .local(fileName: "nope.tar"), boot: fakeBoot(BootRecorder()))
        guard case .notRestored(let error) = missing else {
            Issue.record("restored a missing file")
            return
        }
        #expect(error.kind == .fetch && error.message.contains(Self.fileName))
        let unreachable = FakeCoordinator(
            refusal: RPCError(.unavailable, "no instance of service 'restore-coordinator'"))
        let outcome = await session(replacement, coordinator: unreachable, console: console).run(
            .local(fileName: Self.fileName), boot: fakeBoot(BootRecorder()))
        guard case .notRestored(let second) = outcome else {
            Issue.record("restored without a coordinator")
            return
        }
        #expect(second.kind == .coordinatorUnavailable && second.message.contains("nothing was written"))
        #expect(snapshot(replacement.path) == before)
    }
}
