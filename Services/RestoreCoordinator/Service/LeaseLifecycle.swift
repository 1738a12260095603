import Foundation
import RampartAPI
import RampartBasics
import RampartProto

/// The restore lease's lifecycle as a pure state machine, after `BrokerStateMachine` (docs/restore.md,
/// "Leases"; docs/decisions.md, "The restore lease is a pure state machine"): the lease rows as values,
/// an event and the time in; a decision out — accepted, or refused with the message the caller gets;
/// the lease as it becomes; and what must be written and published, in order.
///
/// It holds no state and does no I/O: no database, no clock (`now` is always given), no randomness
/// (a new lease's id is given). `RestoreCoordinatorService` reads the rows, asks, and applies the
/// actions in the transaction that read them, where every lease write is still fenced in SQL by the
/// fencing token and state it was decided on.
///
/// - Grant: the scope's leases past their time are expired first; a scope holds one active lease (the
///   HA pair, the cluster, the device itself: R7, R8, R1); every check and the order must pass.
/// - Reports (step, failure, rejoin) carry the lease's fencing token: another token is refused
///   (`stale fencing token N`, P1), so a later lease of the device always wins.
/// - A report renews the lease until `endTime(from:)`; past it, the lease is expired (by the sweep's
///   tick, a decision of its scope, or the late report itself, which is then refused).
/// - Steps go forward only: granted, applying, applied, rebooting (the device's commit point).
/// - A lease ends rejoined, expired, released (by an operator) or failed. One that was released or
///   expired after its device passed the commit point still takes the rejoin: the configuration is
///   written whatever happened to the lease, and what the device became must be recorded.
struct LeaseLifecycle: Sendable {
    /// How long a lease lives without a report (`restore-coordinator --lease-seconds`).
    let timeToLive: Duration

    /// A lifecycle whose leases live `timeToLive` past their grant and each report.
    init(timeToLive: Duration) {
        self.timeToLive = timeToLive
    }

    // MARK: values

    /// A row of `restore.leases` as a value.
    struct Lease: Equatable, Sendable {
        /// The lease id (a lower-case UUID).
        var id: String
        var deviceID: String
        var deviceName: String
        var role: Rampart_Inventory_V1_Role
        var haPairID: String
        var clusterID: String
        /// What restores are serialised in: `ha-pair:ID`, `cluster:ID` or `device:ID` (`RestoreChecks.Situation.scope`).
        var scope: String
        /// From the database's sequence; 0 for a lease being granted, until it is inserted.
        var fencingToken: UInt64
        var state: Rampart_Restore_V1_LeaseState
        /// The last step the device reported, or how the lease ended ("released", "failed", "rejoined");
        /// an expiry leaves it as it was.
        var step: String
        var archiveFileName: String
        var archiveSHA256: String
        var replacementSerial: String
        var cliUser: String
        var requestedBy: String
        /// What the restore removed and must be re-enrolled (R10, R13).
        var removedVPNCertificates: [String]
        var grantedAt: Date
        /// Its end time (`endTime(from:)` of its grant or its last report).
        var expiresAt: Date
        var endedAt: Date?
        var endReason: String
        /// Who released it by force.
        var releasedBy: String

        /// The lease on the wire.
        var message: Rampart_Restore_V1_Lease {
            var lease = Rampart_Restore_V1_Lease()
            lease.id = id
            lease.deviceID = deviceID
            lease.deviceName = deviceName
            lease.role = role
            lease.haPairID = haPairID
            lease.clusterID = clusterID
            lease.fencingToken = fencingToken
            lease.state = state
            lease.step = step
            lease.archiveFileName = archiveFileName
            lease.archiveSha256 = archiveSHA256
            lease.replacementSerial = replacementSerial
            lease.cliUser = cliUser
            lease.grantedUnixMs = grantedAt.unixMillis
            lease.expiresUnixMs = expiresAt.unixMillis
            lease.endedUnixMs = endedAt?.unixMillis ?? 0
            lease.endReason = endReason
            lease.releasedBy = releasedBy
            return lease
        }
    }

    /// A RequestLease, with everything decided before the order of restores.
    struct Request: Sendable {
        /// The id the lease gets if granted (made by the service: the machine has no randomness).
        var leaseId: String
        /// Inventory's view of the device, its pair or cluster, and the replacement's facts.
        var situation: RestoreChecks.Situation
        /// Every check but the order (`RestoreChecks.checks`); the order is decided here, against the scope's leases.
        var checks: [RestoreChecks.Check]
        var archiveFileName: String
        var archiveSHA256: String
        var cliUser: String
        /// Who asked (the key's name).
        var caller: String
    }

    /// What happened.
    enum Event: Sendable {
        /// RequestLease: `scopeLeases` are the request's scope's active leases as read (locked), past their time or not.
        case request(Request, scopeLeases: [Lease])
        /// ReportStep under `token`: renews the lease and records the step when it is a new one.
        case reportStep(Lease, token: UInt64, step: String, detail: String, removedVPNCertificates: [String])
        /// ReportFailed under `token`: the restore failed on the device before it wrote anything.
        case reportFailed(Lease, token: UInt64, reason: String)
        /// ReportRejoined under `token` (inventory already shows the device connected). `passedCommitPoint`:
        /// `commitPoint` is recorded among the lease's steps; `inHaPair`: the device is an HA peer (its
        /// checklist gets the resume-sync item).
        case rejoin(Lease, token: UInt64, passedCommitPoint: Bool, inHaPair: Bool)
        /// An operator's forced release (the reason is required before it gets here).
        case release(Lease, reason: String, by: String)
        /// The expiry sweep, with the active leases it read.
        case tick([Lease])
    }

    /// What the service must do, in order, in the transaction that read the rows.
    enum Action: Equatable, Sendable {
        /// Insert `lease`, just granted; the database's sequence gives its fencing token, larger than any before.
        case insert(Lease)
        /// Write the columns of `lease` that differ from `was`, only while the row still holds `was`'s
        /// fencing token and state: the SQL fence, the last line of defence.
        case update(Lease, was: Lease)
        /// Record step `step` of lease `leaseId` (`restore.lease_steps`).
        case recordStep(leaseId: String, step: String, detail: String)
        /// Record a request (`restore.requests`): granted, with its lease, or refused with every reason.
        case recordRequest(
            deviceId: String, replacementSerial: String, archiveFileName: String, granted: Bool, leaseId: String?,
            reasons: [String])
        /// Publish `topic` about lease `leaseId` as just written: the lease as data, its own attributes and `attributes`.
        case emit(topic: String, leaseId: String, attributes: [String: String])
        /// Publish `topic` about `subject` without a lease (a refused request).
        case publish(topic: String, subject: String, attributes: [String: String])
        /// Open (or reopen) the checklist of lease `leaseId`'s device (R13).
        case openChecklist(leaseId: String, certificates: [String], inHaPair: Bool)
    }

    /// The answer to one event.
    struct Decision: Equatable, Sendable {
        /// Why the event is refused, as the caller reads it (FAILED_PRECONDITION); nil when accepted.
        var refusal: String?
        /// The event's lease as it becomes: the granted one (its token still 0) for a request; nil for a
        /// refused request and for a tick.
        var lease: Lease?
        /// What to write and publish. A refusal may have some: a lease found past its time is expired.
        var actions: [Action]

        var accepted: Bool { refusal == nil }

        /// The leases this decision expires, as they become.
        var expired: [Lease] {
            actions.compactMap {
                guard case .update(let lease, let was) = $0, lease.state == .expired, was.state == .active else { return nil }
                return lease
            }
        }
    }

    // MARK: time

    /// When a lease granted or renewed at `now` ends: the one place lease time is computed.
    func endTime(from now: Date) -> Date {
        let components = timeToLive.components
        return now.addingTimeInterval(TimeInterval(components.seconds) + TimeInterval(components.attoseconds) / 1e18)
    }

    /// Whether `lease` is active but past its end time at `now`. At its end time exactly it still holds.
    static func isOverdue(_ lease: Lease, at now: Date) -> Bool {
        lease.state == .active && now > lease.expiresAt
    }

    /// The lease among `leases` that holds its scope at `now`: active and not past its time.
    static func holder(among leases: [Lease], at now: Date) -> Lease? {
        leases.first { $0.state == .active && !isOverdue($0, at: now) }
    }

    /// The order check (R7, R8; one restore at a time per device) of a request in `situation` against its
    /// scope's active leases at `now`: what RequestLease decides with, and what CheckRestore shows.
    static func order(_ situation: RestoreChecks.Situation, scopeLeases: [Lease], at now: Date) -> RestoreChecks.Check {
        RestoreChecks.order(situation, active: holder(among: scopeLeases, at: now)?.message)
    }

    // MARK: steps

    /// The steps a device reports with ReportStep, in order (the rejoin, ReportRejoined, ends the lease as `rejoined`).
    static let steps = [RestoreAPI.Step.granted, RestoreAPI.Step.applying, RestoreAPI.Step.applied, RestoreAPI.Step.rebooting]

    /// The device's commit point: once this step is recorded under its token, its configuration is
    /// written whatever happens to the lease (docs/restore.md, "A lease that ends during a restore").
    static let commitPoint = RestoreAPI.Step.rebooting

    /// Why `step` may not follow `current` on lease `leaseId`; nil when it may. The same step again is a
    /// renewal; a later one may skip steps; an earlier one, or a name that is not a step, is refused.
    static func stepRefusal(_ step: String, after current: String, leaseId: String) -> String? {
        let order = steps.joined(separator: ", ")
        guard let rank = steps.firstIndex(of: step) else {
            return "\(step) is not a step of a restore: a device reports \(order), in that order (and its rejoin with ReportRejoined)"
        }
        guard let currentRank = steps.firstIndex(of: current), rank < currentRank else { return nil }
        return "step \(step) is out of order: lease \(leaseId) is at step \(current); a device reports \(order), in that order"
    }

    // MARK: the decision

    /// Decides `event` at `now`.
    func decide(_ event: Event, now: Date) -> Decision {
        switch event {
        case .request(let request, let scopeLeases):
            return self.request(request, scopeLeases: scopeLeases, now: now)
        case .reportStep(let lease, let token, let step, let detail, let removed):
            if let refused = refusedReport(lease, token: token, now: now) { return refused }
            if let refusal = Self.stepRefusal(step, after: lease.step, leaseId: lease.id) {
                return Decision(refusal: refusal, lease: lease, actions: [])
            }
            var renewed = lease
            renewed.step = step
            renewed.expiresAt = endTime(from: now)
            if !removed.isEmpty { renewed.removedVPNCertificates = removed }
            var actions: [Action] = [.update(renewed, was: lease)]
            if step != lease.step {
                actions += [
                    .recordStep(leaseId: lease.id, step: step, detail: detail),
                    .emit(topic: "restore.step", leaseId: lease.id, attributes: ["detail": detail]),
                ]
            }
            return Decision(refusal: nil, lease: renewed, actions: actions)
        case .reportFailed(let lease, let token, let reason):
            if let refused = refusedReport(lease, token: token, now: now) { return refused }
            return end(
                lease, as: .failed, reason: reason.isEmpty ? "failed on the device" : reason, by: "",
                topic: "restore.lease.failed", now: now)
        case .rejoin(let lease, let token, let passedCommitPoint, let inHaPair):
            return rejoin(lease, token: token, passedCommitPoint: passedCommitPoint, inHaPair: inHaPair, now: now)
        case .release(let lease, let reason, let by):
            guard lease.state == .active else {
                return Decision(refusal: "lease \(lease.id) is not active (\(lease.state.label))", lease: lease, actions: [])
            }
            return end(lease, as: .released, reason: reason, by: by, topic: "restore.lease.released", now: now)
        case .tick(let leases):
            let actions = leases.filter { Self.isOverdue($0, at: now) }.flatMap { expire($0, now: now).actions }
            return Decision(refusal: nil, lease: nil, actions: actions)
        }
    }

    private func request(_ request: Request, scopeLeases: [Lease], now: Date) -> Decision {
        // A lease whose device went silent frees its scope at once.
        let actions = scopeLeases.filter { Self.isOverdue($0, at: now) }.flatMap { expire($0, now: now).actions }
        let situation = request.situation
        let device = situation.device
        let serial = situation.facts.serial
        let reasons = (request.checks + [Self.order(situation, scopeLeases: scopeLeases, at: now)]).flatMap(\.reasons)
        guard reasons.isEmpty else {
            return Decision(
                refusal: "restore of \(device.name) refused: " + reasons.joined(separator: "; "), lease: nil,
                actions: actions + [
                    .recordRequest(
                        deviceId: device.id, replacementSerial: serial, archiveFileName: request.archiveFileName,
                        granted: false, leaseId: nil, reasons: reasons),
                    .publish(
                        topic: "restore.lease.refused", subject: device.id,
                        attributes: [
                            "device_name": device.name, "replacement_serial": serial,
                            "reasons": reasons.joined(separator: "; "), "caller": request.caller,
                        ]),
                ])
        }
        let lease = Lease(
            id: request.leaseId, deviceID: device.id, deviceName: device.name, role: device.role,
            haPairID: device.haPairID, clusterID: device.clusterID, scope: situation.scope, fencingToken: 0,
            state: .active, step: RestoreAPI.Step.granted, archiveFileName: request.archiveFileName,
            archiveSHA256: request.archiveSHA256, replacementSerial: serial, cliUser: request.cliUser,
            requestedBy: request.caller, removedVPNCertificates: [], grantedAt: now, expiresAt: endTime(from: now),
            endedAt: nil, endReason: "", releasedBy: "")
        return Decision(
            refusal: nil, lease: lease,
            actions: actions + [
                .insert(lease),
                .recordRequest(
                    deviceId: device.id, replacementSerial: serial, archiveFileName: request.archiveFileName, granted: true,
                    leaseId: lease.id, reasons: []),
                .recordStep(leaseId: lease.id, step: RestoreAPI.Step.granted, detail: "replacement \(serial)"),
                .emit(
                    topic: "restore.lease.granted", leaseId: lease.id,
                    attributes: ["replacement_serial": serial, "archive": request.archiveFileName, "caller": request.caller]),
            ])
    }

    /// The refusal of a report under `lease` with `token` at `now`, checked in this order: the token, the
    /// time (a lease past it is expired here), the state; nil when the report may go on.
    private func refusedReport(_ lease: Lease, token: UInt64, now: Date) -> Decision? {
        guard token == lease.fencingToken else {
            return Decision(refusal: Self.staleToken(token, lease), lease: lease, actions: [])
        }
        if Self.isOverdue(lease, at: now) {
            let (expired, actions) = expire(lease, now: now)
            return Decision(refusal: Self.expiredRefusal(lease), lease: expired, actions: actions)
        }
        guard lease.state == .active else {
            return Decision(refusal: Self.endedRefusal(lease), lease: lease, actions: [])
        }
        return nil
    }

    private func rejoin(_ lease: Lease, token: UInt64, passedCommitPoint: Bool, inHaPair: Bool, now: Date) -> Decision {
        guard token == lease.fencingToken else {
            return Decision(refusal: Self.staleToken(token, lease), lease: lease, actions: [])
        }
        var current = lease
        var actions: [Action] = []
        if Self.isOverdue(lease, at: now) {
            (current, actions) = expire(lease, now: now)
            guard passedCommitPoint else {
                return Decision(refusal: Self.expiredRefusal(lease), lease: current, actions: actions)
            }
        }
        let reason: String
        switch current.state {
        case .active:
            reason = ""
        case .released where passedCommitPoint, .expired where passedCommitPoint:
            // Ended after the commit point: it becomes rejoined, saying how it had ended.
            reason =
                "rejoined after the lease was \(current.state.label) past the commit point"
                + (current.endReason.isEmpty ? "" : " (\(current.endReason))")
        default:
            return Decision(refusal: Self.endedRefusal(current), lease: current, actions: actions)
        }
        let ended = end(
            current, as: .rejoined, step: RestoreAPI.Step.rejoined, reason: reason, by: "", topic: "restore.lease.rejoined",
            now: now)
        return Decision(
            refusal: nil, lease: ended.lease,
            actions: actions + ended.actions + [
                .openChecklist(leaseId: lease.id, certificates: current.removedVPNCertificates, inHaPair: inHaPair)
            ])
    }

    /// `lease` expired at `now`: its device went silent. Its step stays what the device last reported.
    private func expire(_ lease: Lease, now: Date) -> (lease: Lease, actions: [Action]) {
        var expired = lease
        expired.state = .expired
        expired.endedAt = now
        expired.endReason = "the device went silent: no report since \(Self.utcSeconds(lease.expiresAt))"
        return (
            expired,
            [
                .update(expired, was: lease),
                .recordStep(leaseId: lease.id, step: "expired", detail: expired.endReason),
                .emit(topic: "restore.lease.expired", leaseId: lease.id, attributes: ["reason": expired.endReason]),
            ]
        )
    }

    /// `lease` ended at `now` as `state`, its step `step` (the state's name unless given).
    private func end(
        _ lease: Lease, as state: Rampart_Restore_V1_LeaseState, step: String? = nil, reason: String, by: String,
        topic: String, now: Date
    ) -> Decision {
        var ended = lease
        ended.state = state
        ended.step = step ?? state.label
        ended.endedAt = now
        ended.endReason = reason
        ended.releasedBy = by
        return Decision(
            refusal: nil, lease: ended,
            actions: [
                .update(ended, was: lease),
                .recordStep(leaseId: lease.id, step: ended.step, detail: reason),
                .emit(topic: topic, leaseId: lease.id, attributes: reason.isEmpty ? [:] : ["reason": reason, "by": by]),
            ])
    }

    // MARK: refusals

    static func staleToken(_ token: UInt64, _ lease: Lease) -> String {
        "stale fencing token \(token): lease \(lease.id) holds token \(lease.fencingToken); this restore must stop"
    }

    static func expiredRefusal(_ lease: Lease) -> String {
        "lease \(lease.id) expired: the device was silent too long; start again"
    }

    static func endedRefusal(_ lease: Lease) -> String {
        "lease \(lease.id) has ended (\(lease.state.label)\(lease.endReason.isEmpty ? "" : ": \(lease.endReason)"))"
    }

    /// `date` in UTC to the second, the fraction dropped ("2026-11-27T16:20:05Z").
    static func utcSeconds(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0)!
        let whole = Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: whole)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0,
            c.second ?? 0)
    }
}
