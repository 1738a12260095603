import Foundation
import Postgres
import RampartBasics
import RampartBus
import RampartProto

/// Rows of `restore.leases` and the steps every lease change takes in SQL.
enum LeaseStore {
    static let columns = """
        id, device_id, device_name, role, ha_pair_id, cluster_id, fencing_token, state, step, archive_file_name,
        archive_sha256, replacement_serial, cli_user, requested_by, removed_vpn_certificates, granted_at, expires_at,
        ended_at, end_reason, released_by
        """

    static func lease(from row: PostgresRow) throws -> Rampart_Restore_V1_Lease {
        var lease = Rampart_Restore_V1_Lease()
        lease.id = try row.decode("id", as: UUID.self).uuidString.lowercased()
        lease.deviceID = try row.decode("device_id")
        lease.deviceName = try row.decode("device_name")
        lease.role = RoleLabel.role(try row.decode("role"))
        lease.haPairID = try row.decode("ha_pair_id")
        lease.clusterID = try row.decode("cluster_id")
        lease.fencingToken = UInt64(try row.decode("fencing_token", as: Int64.self))
        lease.state = state(try row.decode("state"))
        lease.step = try row.decode("step")
        lease.archiveFileName = try row.decode("archive_file_name")
        lease.archiveSha256 = try row.decode("archive_sha256")
        lease.replacementSerial = try row.decode("replacement_serial")
        lease.cliUser = try row.decode("cli_user")
        lease.grantedUnixMs = try row.decode("granted_at", as: Date.self).unixMillis
        lease.expiresUnixMs = try row.decode("expires_at", as: Date.self).unixMillis
        lease.endedUnixMs = try row.decodeIfPresent("ended_at", as: Date.self)?.unixMillis ?? 0
        lease.endReason = try row.decode("end_reason")
        lease.releasedBy = try row.decode("released_by")
        return lease
    }

    static func removedCertificates(_ row: PostgresRow) throws -> [String] {
        try row.decode("removed_vpn_certificates", as: [String].self)
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

    /// The lease `id`, locked for update; NOT_FOUND when there is none.
    static func lock(_ id: UUID, on connection: PostgresConnection) throws -> PostgresRow {
        guard let row = try connection.query("SELECT \(unsafeRaw: columns) FROM restore.leases WHERE id = \(id) FOR UPDATE").first
        else { throw RPCError.notFound("no restore lease \(id.uuidString.lowercased())") }
        return row
    }

    static func get(_ id: UUID, on connection: PostgresConnection) throws -> Rampart_Restore_V1_Lease {
        guard let row = try connection.query("SELECT \(unsafeRaw: columns) FROM restore.leases WHERE id = \(id)").first
        else { throw RPCError.notFound("no restore lease \(id.uuidString.lowercased())") }
        return try lease(from: row)
    }

    /// Ends every active lease whose time is up (in `scope`, or everywhere); returns them, ended.
    static func expireOverdue(now: Date, scope: String?, on connection: PostgresConnection) throws -> [Rampart_Restore_V1_Lease] {
        let (leases, records) = try expired(connection.query(expiring(now: now, scope: scope)))
        if !records.isEmpty { _ = try connection.pipeline(records) }
        return leases
    }

    /// The statement that ends every active lease whose time is up (in `scope`, or everywhere when
    /// nil), returning them; ``expired(_:)`` turns its rows into the leases and the statements that
    /// record their step and event.
    static func expiring(now: Date, scope: String?) -> SQL {
        """
        UPDATE restore.leases SET state = 'expired', ended_at = \(now),
            end_reason = 'the device went silent: no report since ' || to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        WHERE state = 'active' AND expires_at < \(now) AND (\(scope ?? "") = '' OR scope = \(scope ?? ""))
        RETURNING \(unsafeRaw: columns)
        """
    }

    /// The statement that reads the lease holding `scope` at `now`: active and not past its time (after
    /// ``expiring(now:scope:)`` in the same round trip, simply the active one).
    static func holding(scope: String, now: Date) -> SQL {
        "SELECT \(unsafeRaw: columns) FROM restore.leases WHERE scope = \(scope) AND state = 'active' AND expires_at >= \(now)"
    }

    /// The leases ``expiring(now:scope:)`` ended, and the statements recording each one's step and event.
    static func expired(_ rows: PostgresRows) throws -> (leases: [Rampart_Restore_V1_Lease], records: [SQL]) {
        let leases = try rows.map(lease(from:))
        let records = try leases.flatMap { lease in
            [
                stepping(lease.id, "expired", lease.endReason),
                try emitting("restore.lease.expired", lease, ["reason": lease.endReason]),
            ]
        }
        return (leases, records)
    }

    static func step(_ leaseId: String, _ step: String, _ detail: String, on connection: PostgresConnection) throws {
        _ = try connection.execute(stepping(leaseId, step, detail))
    }

    /// Whether lease `leaseId` recorded step `step` (e.g. `rebooting`, the device's commit point).
    static func hasStep(_ leaseId: String, _ step: String, on connection: PostgresConnection) throws -> Bool {
        try connection.query(
            "SELECT 1 AS one FROM restore.lease_steps WHERE lease_id = \(leaseId)::uuid AND step = \(step) LIMIT 1"
        ).first != nil
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
