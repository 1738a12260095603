import Foundation
import Postgres
import RampartAPI
import RampartBasics
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC

/// Rows of `restore.leases`, and the SQL that reads them for `LeaseLifecycle` and applies its decisions.
enum LeaseStore {
    static let columns = """
        id, device_id, device_name, role, ha_pair_id, cluster_id, scope, fencing_token, state, step, archive_file_name,
        archive_sha256, replacement_serial, cli_user, requested_by, removed_vpn_certificates, granted_at, expires_at,
        ended_at, end_reason, released_by
        """

    /// A row (of `columns`) as the lifecycle's value.
    static func record(from row: PostgresRow) throws -> LeaseLifecycle.Lease {
        LeaseLifecycle.Lease(
            id: try row.decode("id", as: UUID.self).uuidString.lowercased(),
            deviceID: try row.decode("device_id"),
            deviceName: try row.decode("device_name"),
            role: RoleLabel.role(try row.decode("role")),
            haPairID: try row.decode("ha_pair_id"),
            clusterID: try row.decode("cluster_id"),
            scope: try row.decode("scope"),
            fencingToken: UInt64(try row.decode("fencing_token", as: Int64.self)),
            state: state(try row.decode("state")),
            step: try row.decode("step"),
            archiveFileName: try row.decode("archive_file_name"),
            archiveSHA256: try row.decode("archive_sha256"),
            replacementSerial: try row.decode("replacement_serial"),
            cliUser: try row.decode("cli_user"),
            requestedBy: try row.decode("requested_by"),
            removedVPNCertificates: try row.decode("removed_vpn_certificates", as: [String].self),
            grantedAt: try row.decode("granted_at", as: Date.self),
            expiresAt: try row.decode("expires_at", as: Date.self),
            endedAt: try row.decodeIfPresent("ended_at", as: Date.self),
            endReason: try row.decode("end_reason"),
            releasedBy: try row.decode("released_by"))
    }

    /// A row (of `columns`) on the wire.
    static func lease(from row: PostgresRow) throws -> Rampart_Restore_V1_Lease {
        try record(from: row).message
    }

    static func state(_ text: String) -> Rampart_Restore_V1_LeaseState {
        switch text {
        case "active": .active
        case "rejoined": .rejoined
        case "expired": .expired
        case "released": .released
        case "failed": .failed
        default: .unspecified
        }
    }

    // MARK: reads

    /// The lease `id`, locked for update; NOT_FOUND when there is none.
    static func lock(_ id: UUID, on connection: PostgresConnection) throws -> LeaseLifecycle.Lease {
        try found(id, try connection.query(locking(id)))
    }

    /// The statement that reads lease `id`, locked for update.
    static func locking(_ id: UUID) -> SQL {
        "SELECT \(unsafeRaw: columns) FROM restore.leases WHERE id = \(id) FOR UPDATE"
    }

    /// The one lease in `rows`, or NOT_FOUND naming `id`.
    static func found(_ id: UUID, _ rows: PostgresRows) throws -> LeaseLifecycle.Lease {
        guard let row = rows.first else { throw RPCError.notFound("no restore lease \(id.uuidString.lowercased())") }
        return try record(from: row)
    }

    static func get(_ id: UUID, on connection: PostgresConnection) throws -> Rampart_Restore_V1_Lease {
        guard let row = try connection.query("SELECT \(unsafeRaw: columns) FROM restore.leases WHERE id = \(id)").first
        else { throw RPCError.notFound("no restore lease \(id.uuidString.lowercased())") }
        return try lease(from: row)
    }

    /// The statement that reads the active leases of `scope`, past their time or not (at most one, by the
    /// partial unique index), locked for update when `locked`.
    static func active(scope: String, locked: Bool) -> SQL {
        "SELECT \(unsafeRaw: columns) FROM restore.leases WHERE scope = \(scope) AND state = 'active'\(unsafeRaw: locked ? " FOR UPDATE" : "")"
    }

    /// The statement that reads, locked, the active leases whose end time is before `now`, skipping those
    /// another transaction holds (a report or a decision, which decides them itself). It only narrows the
    /// read to the expiry index: `LeaseLifecycle` decides which are overdue.
    static func overdue(now: Date) -> SQL {
        """
        SELECT \(unsafeRaw: columns) FROM restore.leases WHERE state = 'active' AND expires_at < \(now)
        ORDER BY expires_at FOR UPDATE SKIP LOCKED
        """
    }

    /// The statement that says (`recorded`) whether lease `id` recorded step `step` (e.g. the commit point).
    static func hasStep(_ id: UUID, _ step: String) -> SQL {
        "SELECT EXISTS (SELECT 1 FROM restore.lease_steps WHERE lease_id = \(id) AND step = \(step)) AS recorded"
    }

    // MARK: applying a decision

    /// Applies `decision`'s actions in the caller's transaction, in order: every lease write first, in one
    /// round trip, each fenced by the fencing token and state it was decided on (a row that no longer holds
    /// them aborts the call, and with it the transaction); then the records — steps, requests, events, a
    /// checklist — in one more. Returns the leases as written (`RETURNING`), by id.
    @discardableResult
    static func apply(
        _ decision: LeaseLifecycle.Decision, now: Date, on connection: PostgresConnection
    ) throws -> [String: Rampart_Restore_V1_Lease] {
        let writes: [SQL] = decision.actions.compactMap { action in
            switch action {
            case .insert(let lease): inserting(lease)
            case .update(let lease, let was): updating(lease, was: was)
            default: nil
            }
        }
        var results = try connection.pipeline(writes).makeIterator()
        var written: [String: Rampart_Restore_V1_Lease] = [:]
        var records: [SQL] = []
        func flush() throws {
            if !records.isEmpty { _ = try connection.pipeline(records) }
            records = []
        }
        func lease(_ id: String, for what: String) throws -> Rampart_Restore_V1_Lease {
            guard let lease = written[id] else {
                throw RPCError.internalError("\(what) about restore lease \(id), which the decision did not write")
            }
            return lease
        }
        for action in decision.actions {
            switch action {
            case .insert(let lease), .update(let lease, _):
                // Each write returns its row; one that matched none lost the fence.
                guard let row = results.next()?.first else {
                    throw RPCError(
                        .aborted,
                        "restore lease \(lease.id) changed while it was decided on (fencing token \(lease.fencingToken)); nothing was recorded, try again")
                }
                written[lease.id] = try self.lease(from: row)
            case .recordStep(let id, let step, let detail):
                records.append(stepping(id, step, detail))
            case .recordRequest(let deviceId, let serial, let archive, let granted, let leaseId, let reasons):
                records.append(
                    """
                    INSERT INTO restore.requests (device_id, replacement_serial, archive_file_name, granted, lease_id, reasons)
                    VALUES (\(deviceId), \(serial), \(archive), \(granted), \(leaseId)::uuid, \(reasons))
                    """)
            case .emit(let topic, let id, let attributes):
                records.append(try emitting(topic, try lease(id, for: topic), attributes))
            case .publish(let topic, let subject, let attributes):
                records.append(
                    try EventOutbox.appending(
                        OutboxEvent(topic: topic, subject: subject, attributes: attributes), source: RestoreAPI.serviceName))
            case .openChecklist(let id, let certificates, let inHaPair):
                try flush()
                try Checklists.open(
                    for: try lease(id, for: "the checklist"), certificates: certificates, inHaPair: inHaPair, now: now,
                    on: connection)
            }
        }
        try flush()
        return written
    }

    /// The statement that inserts `lease`, just granted, with the next fencing token.
    static func inserting(_ lease: LeaseLifecycle.Lease) -> SQL {
        """
        INSERT INTO restore.leases (
            id, device_id, device_name, role, ha_pair_id, cluster_id, scope, fencing_token, state, step,
            archive_file_name, archive_sha256, replacement_serial, cli_user, requested_by, removed_vpn_certificates,
            granted_at, expires_at, ended_at, end_reason, released_by)
        VALUES (
            \(lease.id)::uuid, \(lease.deviceID), \(lease.deviceName), \(lease.role.label), \(lease.haPairID),
            \(lease.clusterID), \(lease.scope), nextval('restore.fencing_tokens'), \(lease.state.label), \(lease.step),
            \(lease.archiveFileName), \(lease.archiveSHA256), \(lease.replacementSerial), \(lease.cliUser),
            \(lease.requestedBy), \(lease.removedVPNCertificates)::text[], \(lease.grantedAt), \(lease.expiresAt),
            \(lease.endedAt), \(lease.endReason), \(lease.releasedBy))
        RETURNING \(unsafeRaw: columns)
        """
    }

    /// The statement that writes the columns of `lease` that differ from `was`, only while the row still
    /// holds `was`'s fencing token and state (the fence); it returns the row, or none when the fence held.
    static func updating(_ lease: LeaseLifecycle.Lease, was: LeaseLifecycle.Lease) -> SQL {
        var changes: [(column: String, value: PostgresBind)] = []
        if lease.state != was.state { changes.append(("state", lease.state.label.postgresBind)) }
        if lease.step != was.step { changes.append(("step", lease.step.postgresBind)) }
        if lease.expiresAt != was.expiresAt { changes.append(("expires_at", lease.expiresAt.postgresBind)) }
        if lease.endedAt != was.endedAt { changes.append(("ended_at", lease.endedAt?.postgresBind ?? .null)) }
        if lease.endReason != was.endReason { changes.append(("end_reason", lease.endReason.postgresBind)) }
        if lease.releasedBy != was.releasedBy { changes.append(("released_by", lease.releasedBy.postgresBind)) }
        if lease.removedVPNCertificates != was.removedVPNCertificates {
            changes.append(("removed_vpn_certificates", lease.removedVPNCertificates.postgresBind))
        }
        // Nothing else changes after a grant; nothing changed at all still checks the fence.
        var binds = changes.map(\.value)
        let assignments = changes.enumerated().map { "\($1.column) = $\($0 + 1)" }
        binds += [was.id.postgresBind, Int64(was.fencingToken).postgresBind, was.state.label.postgresBind]
        let n = changes.count
        let text =
            (assignments.isEmpty
                ? "SELECT \(columns) FROM restore.leases"
                : "UPDATE restore.leases SET \(assignments.joined(separator: ", "))")
            + " WHERE id = $\(n + 1)::uuid AND fencing_token = $\(n + 2) AND state = $\(n + 3)"
            + (assignments.isEmpty ? "" : " RETURNING \(columns)")
        return SQL(unsafeRawText: text, binds: binds)
    }

    /// The statement that records step `step` of lease `leaseId`.
    static func stepping(_ leaseId: String, _ step: String, _ detail: String) -> SQL {
        "INSERT INTO restore.lease_steps (lease_id, step, detail) VALUES (\(leaseId)::uuid, \(step), \(detail))"
    }

    static func emit(
        _ topic: String, _ lease: Rampart_Restore_V1_Lease, _ extra: [String: String] = [:], on connection: PostgresConnection
    ) throws {
        _ = try connection.execute(emitting(topic, lease, extra))
    }

    /// The statement that records event `topic` about `lease` (its attributes, `extra`, and the lease itself).
    static func emitting(_ topic: String, _ lease: Rampart_Restore_V1_Lease, _ extra: [String: String] = [:]) throws -> SQL {
        var attributes = [
            "device_id": lease.deviceID, "device_name": lease.deviceName, "lease_id": lease.id,
            "fencing_token": "\(lease.fencingToken)", "step": lease.step,
        ]
        attributes.merge(extra) { _, new in new }
        return try EventOutbox.appending(
            OutboxEvent(topic: topic, subject: lease.deviceID, attributes: attributes, message: lease),
            source: "restore-coordinator")
    }
}

/// Roles as stored ("ha-primary") and on the wire.
enum RoleLabel {
    static func role(_ label: String) -> Rampart_Inventory_V1_Role {
        switch label {
        case "standalone": .standalone
        case "ha-primary": .haPrimary
        case "ha-secondary": .haSecondary
        case "cluster-control": .clusterControl
        case "cluster-data": .clusterData
        default: .unspecified
        }
    }
}
