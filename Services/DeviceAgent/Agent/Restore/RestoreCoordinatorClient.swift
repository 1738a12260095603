import Foundation
import Logging
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC

/// What the device asks of the restore coordinator (`proto/rampart/restore/v1/restore.proto`). The bus
/// implementation is `BusRestoreCoordinator`; tests give their own.
public protocol RestoreCoordinating: Sendable {
    /// Asks for a restore lease (and learns of a newer backup); throws the coordinator's `RPCError` when it refuses.
    func requestLease(_ request: Rampart_Restore_V1_RequestLeaseRequest) async throws
        -> Rampart_Restore_V1_LeaseResponse
    /// RequestLease's checks one by one, granting and recording nothing (`restore remote-manager-backup check`).
    func checkRestore(_ request: Rampart_Restore_V1_RequestLeaseRequest) async throws
        -> Rampart_Restore_V1_CheckRestoreResponse
    /// Reports a step (renews the lease).
    func reportStep(_ request: Rampart_Restore_V1_ReportStepRequest) async throws -> Rampart_Restore_V1_Lease
    /// Reports that the restored device rebooted and reconnected (ends the lease).
    func reportRejoined(_ request: Rampart_Restore_V1_ReportRejoinedRequest) async throws -> Rampart_Restore_V1_Lease
    /// Reports that the restore failed before anything was written (ends the lease).
    func reportFailed(_ request: Rampart_Restore_V1_ReportFailedRequest) async throws -> Rampart_Restore_V1_Lease
}

/// The restore coordinator on the bus: service `restore-coordinator`, methods
/// `rampart.restore.v1.Restore/<Name>`, every answer a `LeaseResponse`.
public struct BusRestoreCoordinator: RestoreCoordinating {
    private let client: BusClient
    private let timeout: Duration

    /// Calls through `client`, each call bounded by `timeout`.
    public init(client: BusClient, timeout: Duration = .seconds(10)) {
        self.client = client
        self.timeout = timeout
    }

    public func requestLease(_ request: Rampart_Restore_V1_RequestLeaseRequest) async throws
        -> Rampart_Restore_V1_LeaseResponse
    {
        // Not idempotent: a retried grant could be refused as "already restoring".
        try await client.call(
            RestoreAPI.requestLease, request, timeout: timeout)
    }

    public func checkRestore(_ request: Rampart_Restore_V1_RequestLeaseRequest) async throws
        -> Rampart_Restore_V1_CheckRestoreResponse
    {
        // Records nothing: safe to repeat.
        try await client.call(
            RestoreAPI.checkRestore, request, timeout: timeout,
            idempotent: true)
    }

    public func reportStep(_ request: Rampart_Restore_V1_ReportStepRequest) async throws -> Rampart_Restore_V1_Lease {
        let response: Rampart_Restore_V1_LeaseResponse = try await client.call(
            RestoreAPI.reportStep, request, timeout: timeout,
            idempotent: true)
        return response.lease
    }

    public func reportRejoined(_ request: Rampart_Restore_V1_ReportRejoinedRequest) async throws
        -> Rampart_Restore_V1_Lease
    {
        let response: Rampart_Restore_V1_LeaseResponse = try await client.call(
            RestoreAPI.reportRejoined, request, timeout: timeout)
        return response.lease
    }

    public func reportFailed(_ request: Rampart_Restore_V1_ReportFailedRequest) async throws -> Rampart_Restore_V1_Lease
    {
        let response: Rampart_Restore_V1_LeaseResponse = try await client.call(
            RestoreAPI.reportFailed, request, timeout: timeout)
        return response.lease
    }
}

/// Holds a granted restore lease: reports steps under its fencing token and renews it in the
/// background (by reporting the current step again, with the same detail and removed certificates) at
/// least every third of its time to live, which is taken from `lease.expires_unix_ms - now` after every
/// answer. Calls are serialised, so a renewal never
/// overtakes a step. A wrong or outdated token, an ended lease or one the coordinator no longer knows
/// marks the lease lost; the restore then stops.
public actor LeaseKeeper {
    /// The lease as last answered.
    public private(set) var lease: Rampart_Restore_V1_Lease
    /// Why the lease was lost, once it is.
    public private(set) var lost: RestoreError?
    /// Whether the lease ended (rejoined or failed reported).
    public private(set) var ended = false

    private let coordinator: any RestoreCoordinating
    private let logger: Logger
    private let now: @Sendable () -> Int64
    private var step: String
    private var detail = ""
    private var removed: [String] = []
    private var lastReportMs: Int64
    private var timeToLiveMs: Int64
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Used when the coordinator gives no usable expiry.
    static let fallbackTimeToLiveMs: Int64 = 15_000

    /// Keeps `lease`, just granted.
    public init(
        lease: Rampart_Restore_V1_Lease, coordinator: any RestoreCoordinating, logger: Logger,
        now: @escaping @Sendable () -> Int64 = { unixMillis() }
    ) {
        self.lease = lease
        self.coordinator = coordinator
        self.logger = logger
        self.now = now
        step = lease.step.isEmpty ? RestoreAPI.Step.granted : lease.step
        let current = now()
        lastReportMs = current
        timeToLiveMs = Self.timeToLive(lease, now: current)
    }

    /// The time to live of `lease` seen at `now` (the fallback when it has no expiry or it has passed).
    static func timeToLive(_ lease: Rampart_Restore_V1_Lease, now: Int64) -> Int64 {
        let remaining = lease.expiresUnixMs - now
        return remaining > 0 ? remaining : fallbackTimeToLiveMs
    }

    /// How often the lease is renewed: a third of its time to live (at least 100 ms).
    public var renewalIntervalMs: Int64 { max(100, timeToLiveMs / 3) }

    /// Reports `step` (with `detail` and, for "applied", the VPN certificates removed). Retries while the
    /// coordinator is unreachable and the lease can still be alive; throws `.leaseLost` when the
    /// coordinator refuses the token or the lease, `.coordinatorUnavailable` when it never answers.
    @discardableResult
    public func report(_ step: String, detail: String = "", removedVPNCertificates: [String] = [])
        async throws(RestoreError)
        -> Rampart_Restore_V1_Lease
    {
        await acquire()
        defer { release() }
        if let lost { throw lost }
        var request = Rampart_Restore_V1_ReportStepRequest()
        request.leaseID = lease.id
        request.fencingToken = lease.fencingToken
        request.step = step
        request.detail = detail
        request.removedVpnCertificates = removedVPNCertificates
        let answered = try await call("step \(step)") { [coordinator, request] in
            try await coordinator.reportStep(request)
        }
        self.step = step
        self.detail = detail
        removed = removedVPNCertificates
        return answered
    }

    /// Renews the lease when a third of its time to live has passed since the last report. Failures
    /// are logged; a refused token marks the lease lost.
    public func renewIfDue() async {
        await acquire()
        defer { release() }
        guard lost == nil, !ended, now() - lastReportMs >= renewalIntervalMs else { return }
        var request = Rampart_Restore_V1_ReportStepRequest()
        request.leaseID = lease.id
        request.fencingToken = lease.fencingToken
        request.step = step
        request.detail = detail.isEmpty ? "lease renewal" : detail
        request.removedVpnCertificates = removed
        do {
            let answered = try await coordinator.reportStep(request)
            if !answered.id.isEmpty { lease = answered }
            lastReportMs = now()
            timeToLiveMs = Self.timeToLive(lease, now: lastReportMs)
            logger.debug("lease renewed", metadata: ["lease-id": "\(lease.id)", "step": "\(step)"])
        } catch {
            if let refusal = Self.lossReason(error) {
                lost = RestoreError(.leaseLost, "the restore lease was lost: \(refusal)")
                logger.error("restore lease lost", metadata: ["lease-id": "\(lease.id)", "error": "\(refusal)"])
            } else {
                logger.warning(
                    "lease not renewed, retrying", metadata: ["lease-id": "\(lease.id)", "error": "\(error)"])
            }
        }
    }

    /// Renews until cancelled (or the lease ends or is lost).
    public func keepAlive() async {
        while !Task.isCancelled, lost == nil, !ended {
            let wait = max(50, min(renewalIntervalMs, lastReportMs + renewalIntervalMs - now()))
            do { try await Task.sleep(for: .milliseconds(wait)) } catch { return }
            await renewIfDue()
        }
    }

    /// Reports that the restored device rejoined: the lease ends (REJOINED).
    @discardableResult
    /// Reported even when the lease was lost after the commit point: the configuration is written, and
    /// the coordinator records what the device became (it refuses only a lease that never reached it).
    public func rejoined() async throws(RestoreError) -> Rampart_Restore_V1_Lease {
        await acquire()
        defer { release() }
        var request = Rampart_Restore_V1_ReportRejoinedRequest()
        request.leaseID = lease.id
        request.fencingToken = lease.fencingToken
        let answered = try await call("rejoined") { [coordinator, request] in
            try await coordinator.reportRejoined(request)
        }
        ended = true
        return answered
    }

    /// Reports that the restore failed before anything was written (ends the lease). Best effort: a
    /// lost lease needs no report, and an unreachable coordinator lets the lease expire.
    public func failed(_ reason: String) async {
        await acquire()
        defer { release() }
        guard lost == nil, !ended else { return }
        var request = Rampart_Restore_V1_ReportFailedRequest()
        request.leaseID = lease.id
        request.fencingToken = lease.fencingToken
        request.reason = String(reason.prefix(1000))
        do {
            let answered = try await coordinator.reportFailed(request)
            if !answered.id.isEmpty { lease = answered }
            ended = true
        } catch {
            logger.warning("restore failure not reported", metadata: ["lease-id": "\(lease.id)", "error": "\(error)"])
        }
    }

    /// One call with retries while the coordinator is unreachable and the lease may still be alive.
    private func call(
        _ what: String, _ body: @Sendable () async throws -> Rampart_Restore_V1_Lease
    ) async throws(RestoreError) -> Rampart_Restore_V1_Lease {
        var backoff: Int64 = 200
        while true {
            do {
                let answered = try await body()
                if !answered.id.isEmpty { lease = answered }
                lastReportMs = now()
                timeToLiveMs = Self.timeToLive(lease, now: lastReportMs)
                return answered
            } catch {
                if let refusal = Self.lossReason(error) {
                    let lostError = RestoreError(.leaseLost, "the restore lease was lost: \(refusal)")
                    lost = lostError
                    logger.error(
                        "restore lease lost",
                        metadata: ["lease-id": "\(lease.id)", "report": "\(what)", "error": "\(refusal)"])
                    throw lostError
                }
                // Unreachable: try again while the lease can still be alive on the coordinator's side.
                let deadline = lastReportMs + timeToLiveMs
                if Task.isCancelled || now() + backoff >= deadline {
                    throw RestoreError(
                        .coordinatorUnavailable, "the restore coordinator did not take the report '\(what)': \(error)")
                }
                logger.warning(
                    "report not taken, retrying",
                    metadata: ["report": "\(what)", "error": "\(error)", "retry-ms": "\(backoff)"])
                try? await Task.sleep(for: .milliseconds(backoff))
                backoff = min(backoff * 2, 2000)
            }
        }
    }

    /// The coordinator's reason when `error` means the lease is gone (stale token, ended, unknown).
    static func lossReason(_ error: any Error) -> String? {
        guard let error = error as? RPCError else { return nil }
        switch error.code {
        case .failedPrecondition, .notFound, .aborted, .permissionDenied, .invalidArgument:
            return error.message
        default:
            return nil
        }
    }

    private func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
