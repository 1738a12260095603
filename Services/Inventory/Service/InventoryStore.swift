import Foundation
import Postgres
import RampartBasics
import RampartBus
import RampartProto
import RampartRPC

/// The inventory's SQL: every function runs on a connection the caller holds, inside its transaction.
enum InventoryStore {
    private static let deviceColumns = """
        SELECT d.id::text AS id, d.name, d.serial, d.model, d.platform, d.hypervisor, d.software_version,
               d.software_patch, d.network_modules, d.interfaces::text AS interfaces, d.management_ip, d.manager_id,
               d.connected, d.last_seen, d.out_of_date, d.registered_at, d.updated_at,
               d.identity_conflict_at, d.identity_conflict,
               p.id::text AS pair_id, (p.primary_id = d.id) AS is_primary,
               n.cluster_id::text AS cluster_id, n.role AS cluster_role
        FROM inventory.devices d
        LEFT JOIN inventory.ha_pairs p ON p.primary_id = d.id OR p.secondary_id = d.id
        LEFT JOIN inventory.cluster_nodes n ON n.device_id = d.id
        """

    struct StoredInterface: Codable {
        var type: String
        var count: UInt32
    }

    // MARK: devices

    /// The device with this id or name; `lock` takes a row lock until the transaction ends.
    static func device(_ reference: String, lock: Bool = false, on connection: PostgresConnection) throws
        -> Rampart_Inventory_V1_Device
    {
        guard !reference.isEmpty else { throw RPCError.invalidArgument("no device was named") }
        let id = UUID(uuidString: reference)?.uuidString.lowercased()
        if lock {
            try connection.execute(
                "SELECT 1 FROM inventory.devices WHERE id::text = \(id ?? "") OR (\(id == nil) AND name = \(reference)) FOR UPDATE")
        }
        let rows = try connection.query(
            "\(unsafeRaw: deviceColumns) WHERE d.id::text = \(id ?? "") OR (\(id == nil) AND d.name = \(reference))")
        guard let row = rows.first else { throw RPCError.notFound("no device '\(reference)' is registered") }
        return try device(from: row)
    }

    static func listDevices(_ request: Rampart_Inventory_V1_ListDevicesRequest, on connection: PostgresConnection) throws
        -> [Rampart_Inventory_V1_Device]
    {
        let platform = request.platform == .unspecified ? "" : request.platform.label
        let rows = try connection.query(
            """
            \(unsafeRaw: deviceColumns)
            WHERE (\(platform) = '' OR d.platform = \(platform))
              AND (NOT \(request.onlyDisconnected) OR NOT d.connected)
              AND (NOT \(request.onlyOutOfDate) OR d.out_of_date)
            ORDER BY d.name
            """)
        return try rows.map(device(from:))
    }

    static func devices(ids: [String], on connection: PostgresConnection) throws -> [Rampart_Inventory_V1_Device] {
        let rows = try connection.query("\(unsafeRaw: deviceColumns) WHERE d.id::text = ANY(\(ids)::text[])")
        let byId = Dictionary(uniqueKeysWithValues: try rows.map(device(from:)).map { ($0.id, $0) })
        return ids.compactMap { byId[$0] }
    }

    static func insertDevice(_ device: Rampart_Inventory_V1_Device, on connection: PostgresConnection) throws -> String {
        let id = UUID().uuidString.lowercased()
        do {
            try connection.execute(
                """
                INSERT INTO inventory.devices (id, name, serial, model, platform, hypervisor, software_version,
                    software_patch, network_modules, interfaces, management_ip, manager_id)
                VALUES (\(id)::uuid, \(device.name), \(device.serial), \(device.model), \(device.platform.label),
                    \(device.hypervisor.label), \(device.software.version), \(Int(device.software.patch)),
                    \(Int(device.networkModules)), \(try interfacesJSON(device.interfaces))::jsonb,
                    \(device.managementIp), \(device.managerID))
                """)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw duplicate(error, device)
        }
        return id
    }

    static func updateDevice(_ device: Rampart_Inventory_V1_Device, on connection: PostgresConnection) throws {
        do {
            try connection.execute(
                """
                UPDATE inventory.devices SET name = \(device.name), serial = \(device.serial), model = \(device.model),
                    platform = \(device.platform.label), hypervisor = \(device.hypervisor.label),
                    software_version = \(device.software.version), software_patch = \(Int(device.software.patch)),
                    network_modules = \(Int(device.networkModules)),
                    interfaces = \(try interfacesJSON(device.interfaces))::jsonb,
                    management_ip = \(device.managementIp), manager_id = \(device.managerID), updated_at = now()
                WHERE id = \(device.id)::uuid
                """)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw duplicate(error, device)
        }
    }

    static func deleteDevice(id: String, on connection: PostgresConnection) throws {
        try connection.execute("DELETE FROM inventory.devices WHERE id = \(id)::uuid")
    }

    /// Records a presence report numbered `sequence` by `reporter`, unless the same reporter's report
    /// with a higher number was recorded before (0: unordered, always recorded; another reporter: always
    /// recorded, and its numbers count from then on).
    static func setPresence(
        id: String, connected: Bool, sequence: Int64, reporter: String, on connection: PostgresConnection
    ) throws -> PresenceUpdate {
        let rows = try connection.query(
            """
            UPDATE inventory.devices d SET connected = \(connected), last_seen = now(), presence_sequence = \(sequence)::bigint,
                presence_reporter = \(reporter)
            FROM (SELECT connected AS was FROM inventory.devices WHERE id = \(id)::uuid FOR UPDATE) old
            WHERE d.id = \(id)::uuid AND (\(sequence)::bigint = 0 OR d.presence_reporter <> \(reporter) OR d.presence_sequence < \(sequence)::bigint)
            RETURNING old.was
            """)
        guard let row = rows.first else { return .stale }
        return try row.decode("was", as: Bool.self) == connected ? .unchanged : .changed
    }

    /// Every device's recorded presence: id → connected.
    static func presences(on connection: PostgresConnection) throws -> [String: Bool] {
        var result: [String: Bool] = [:]
        for row in try connection.query("SELECT id::text AS id, connected FROM inventory.devices") {
            result[try row.decode("id", as: String.self)] = try row.decode("connected", as: Bool.self)
        }
        return result
    }

    /// Records a change of presence seen on the bus (`PresenceWatcher`), unless it is already so; returns
    /// whether it changed. Connected sets last seen; disconnected keeps it (when it was last seen alive).
    /// The next report of the device's own agent, whatever its number, applies after it.
    static func setLiveness(id: String, connected: Bool, reporter: String, on connection: PostgresConnection) throws -> Bool {
        try connection.execute(
            """
            UPDATE inventory.devices SET connected = \(connected), presence_sequence = 0, presence_reporter = \(reporter),
                last_seen = CASE WHEN \(connected) THEN now() ELSE last_seen END
            WHERE id = \(id)::uuid AND connected <> \(connected)
            """) > 0
    }

    /// Records that the bus refused an appliance claiming device `id` as (`serial`, `keyName`), and
    /// returns whether this is news worth an event: the first such conflict, or another serial or key
    /// than the last one, or the same one after ten quiet minutes (a refused box asks again every
    /// half minute or so; one event, not one a minute, tells the operator).
    static func recordIdentityConflict(
        id: String, serial: String, keyName: String, reason: String, on connection: PostgresConnection
    ) throws -> Bool {
        let rows = try connection.query(
            """
            UPDATE inventory.devices d SET identity_conflict = \(reason), identity_conflict_at = now(),
                identity_conflict_serial = \(serial), identity_conflict_key = \(keyName)
            FROM (SELECT identity_conflict_at AS at, identity_conflict_serial AS serial, identity_conflict_key AS key
                  FROM inventory.devices WHERE id = \(id)::uuid FOR UPDATE) old
            WHERE d.id = \(id)::uuid
            RETURNING (old.at IS NULL OR old.serial <> \(serial) OR old.key <> \(keyName)
                       OR old.at < now() - interval '10 minutes') AS news
            """)
        guard let row = rows.first else { throw RPCError.notFound("no device '\(id)' is registered") }
        return try row.decode("news", as: Bool.self)
    }

    /// This installation's manager id and when it was made (R6).
    static func manager(on connection: PostgresConnection) throws -> (id: String, createdAt: Date) {
        guard let row = try connection.query("SELECT id, created_at FROM inventory.manager").first else {
            throw RPCError(.internal, "the manager id is missing (inventory migration 5)")
        }
        return (try row.decode("id"), try row.decode("created_at", as: Date.self))
    }

    /// What a presence report did.
    enum PresenceUpdate: Equatable {
        /// Applied; the device's connected state changed.
        case changed
        /// Applied (last seen, sequence); the state was already that.
        case unchanged
        /// Not applied: a report with a higher sequence was applied before (this one came late).
        case stale
    }

    /// Sets the out-of-date flag; returns whether it changed.
    static func setOutOfDate(id: String, outOfDate: Bool, on connection: PostgresConnection) throws -> Bool {
        let changed = try connection.execute(
            """
            UPDATE inventory.devices SET out_of_date = \(outOfDate), updated_at = now()
            WHERE id = \(id)::uuid AND out_of_date <> \(outOfDate)
            """)
        return changed == 1
    }

    private static func duplicate(_ error: PostgresError, _ device: Rampart_Inventory_V1_Device) -> RPCError {
        switch error.constraint {
        case "devices_serial_key": RPCError.alreadyExists("a device with serial \(device.serial) is already registered")
        default: RPCError.alreadyExists("a device named \(device.name) is already registered")
        }
    }

    private static func interfacesJSON(_ groups: [Rampart_Inventory_V1_InterfaceGroup]) throws -> String {
        let stored = groups.map { StoredInterface(type: $0.type, count: $0.count) }
        return String(decoding: try JSONEncoder().encode(stored), as: UTF8.self)
    }

    private static func device(from row: PostgresRow) throws -> Rampart_Inventory_V1_Device {
        var device = Rampart_Inventory_V1_Device()
        device.id = try row.decode("id")
        device.name = try row.decode("name")
        device.serial = try row.decode("serial")
        device.model = try row.decode("model")
        device.platform = Rampart_Inventory_V1_Platform(label: try row.decode("platform")) ?? .unspecified
        device.hypervisor = Rampart_Inventory_V1_Hypervisor(label: try row.decode("hypervisor")) ?? .unspecified
        device.software.version = try row.decode("software_version")
        device.software.patch = UInt32(try row.decode("software_patch", as: Int.self))
        device.networkModules = UInt32(try row.decode("network_modules", as: Int.self))
        let interfaces: String = try row.decode("interfaces")
        device.interfaces = try JSONDecoder().decode([StoredInterface].self, from: Data(interfaces.utf8)).map {
            var group = Rampart_Inventory_V1_InterfaceGroup()
            group.type = $0.type
            group.count = $0.count
            return group
        }
        device.managementIp = try row.decode("management_ip")
        device.managerID = try row.decode("manager_id")
        device.connected = try row.decode("connected")
        device.lastSeenUnixMs = try row.decodeIfPresent("last_seen", as: Date.self).map(millis) ?? 0
        device.outOfDate = try row.decode("out_of_date")
        device.registeredUnixMs = millis(try row.decode("registered_at", as: Date.self))
        device.updatedUnixMs = millis(try row.decode("updated_at", as: Date.self))
        device.identityConflictUnixMs = try row.decodeIfPresent("identity_conflict_at", as: Date.self).map(millis) ?? 0
        device.identityConflict = try row.decode("identity_conflict")
        if let pair: String = try row.decodeIfPresent("pair_id") {
            device.haPairID = pair
            device.role = try row.decode("is_primary", as: Bool.self) ? .haPrimary : .haSecondary
        } else if let cluster: String = try row.decodeIfPresent("cluster_id") {
            device.clusterID = cluster
            device.role = try row.decode("cluster_role", as: String.self) == "control" ? .clusterControl : .clusterData
        } else {
            device.role = .standalone
        }
        return device
    }

    // MARK: HA pairs

    static func pair(_ reference: String, on connection: PostgresConnection) throws -> Rampart_Inventory_V1_HaPair {
        guard !reference.isEmpty else { throw RPCError.invalidArgument("no HA pair was named") }
        let id = UUID(uuidString: reference)?.uuidString.lowercased()
        let rows = try connection.query(
            """
            SELECT id::text AS id, name, primary_id::text AS primary_id, secondary_id::text AS secondary_id, sync_state,
                   created_at
            FROM inventory.ha_pairs WHERE id::text = \(id ?? "") OR (\(id == nil) AND name = \(reference))
            FOR UPDATE
            """)
        guard let row = rows.first else { throw RPCError.notFound("no HA pair '\(reference)' exists") }
        return try pair(from: row)
    }

    static func listPairs(on connection: PostgresConnection) throws -> [Rampart_Inventory_V1_HaPair] {
        try connection.query(
            """
            SELECT id::text AS id, name, primary_id::text AS primary_id, secondary_id::text AS secondary_id, sync_state,
                   created_at
            FROM inventory.ha_pairs ORDER BY name
            """
        ).map(pair(from:))
    }

    static func insertPair(name: String, primary: String, secondary: String, on connection: PostgresConnection) throws
        -> String
    {
        let id = UUID().uuidString.lowercased()
        do {
            try connection.execute(
                """
                INSERT INTO inventory.ha_pairs (id, name, primary_id, secondary_id)
                VALUES (\(id)::uuid, \(name), \(primary)::uuid, \(secondary)::uuid)
                """)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw RPCError.alreadyExists("an HA pair named \(name) already exists")
        }
        return id
    }

    static func updatePair(_ pair: Rampart_Inventory_V1_HaPair, on connection: PostgresConnection) throws {
        do {
            try connection.execute(
                """
                UPDATE inventory.ha_pairs SET name = \(pair.name), primary_id = \(pair.primaryID)::uuid,
                    secondary_id = \(pair.secondaryID)::uuid, sync_state = \(pair.syncState.label)
                WHERE id = \(pair.id)::uuid
                """)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw RPCError.alreadyExists("an HA pair named \(pair.name) already exists")
        }
    }

    static func deletePair(id: String, on connection: PostgresConnection) throws {
        try connection.execute("DELETE FROM inventory.ha_pairs WHERE id = \(id)::uuid")
    }

    private static func pair(from row: PostgresRow) throws -> Rampart_Inventory_V1_HaPair {
        var pair = Rampart_Inventory_V1_HaPair()
        pair.id = try row.decode("id")
        pair.name = try row.decode("name")
        pair.primaryID = try row.decode("primary_id")
        pair.secondaryID = try row.decode("secondary_id")
        pair.syncState = Rampart_Inventory_V1_SyncState(label: try row.decode("sync_state")) ?? .unspecified
        pair.createdUnixMs = millis(try row.decode("created_at", as: Date.self))
        return pair
    }

    // MARK: clusters

    static func cluster(_ reference: String, on connection: PostgresConnection) throws -> Rampart_Inventory_V1_Cluster {
        guard !reference.isEmpty else { throw RPCError.invalidArgument("no cluster was named") }
        let id = UUID(uuidString: reference)?.uuidString.lowercased()
        let rows = try connection.query(
            """
            SELECT id::text AS id, name, created_at FROM inventory.clusters
            WHERE id::text = \(id ?? "") OR (\(id == nil) AND name = \(reference))
            FOR UPDATE
            """)
        guard let row = rows.first else { throw RPCError.notFound("no cluster '\(reference)' exists") }
        return try clusters(from: [row], on: connection)[0]
    }

    static func listClusters(on connection: PostgresConnection) throws -> [Rampart_Inventory_V1_Cluster] {
        let rows = try connection.query("SELECT id::text AS id, name, created_at FROM inventory.clusters ORDER BY name")
        return try clusters(from: Array(rows), on: connection)
    }

    private static func clusters(from rows: [PostgresRow], on connection: PostgresConnection) throws
        -> [Rampart_Inventory_V1_Cluster]
    {
        let ids: [String] = try rows.map { try $0.decode("id") }
        let nodes = try connection.query(
            """
            SELECT cluster_id::text AS cluster_id, device_id::text AS device_id, role FROM inventory.cluster_nodes
            WHERE cluster_id::text = ANY(\(ids)::text[])
            ORDER BY cluster_id, (role = 'control') DESC, position
            """)
        var byCluster: [String: [Rampart_Inventory_V1_ClusterNode]] = [:]
        for row in nodes {
            var node = Rampart_Inventory_V1_ClusterNode()
            node.deviceID = try row.decode("device_id")
            node.role = try row.decode("role", as: String.self) == "control" ? .clusterControl : .clusterData
            byCluster[try row.decode("cluster_id"), default: []].append(node)
        }
        return try rows.map { row in
            var cluster = Rampart_Inventory_V1_Cluster()
            cluster.id = try row.decode("id")
            cluster.name = try row.decode("name")
            cluster.createdUnixMs = millis(try row.decode("created_at", as: Date.self))
            cluster.nodes = byCluster[cluster.id] ?? []
            return cluster
        }
    }

    static func insertCluster(name: String, on connection: PostgresConnection) throws -> String {
        let id = UUID().uuidString.lowercased()
        do {
            try connection.execute("INSERT INTO inventory.clusters (id, name) VALUES (\(id)::uuid, \(name))")
        } catch let error as PostgresError where error.isUniqueViolation {
            throw RPCError.alreadyExists("a cluster named \(name) already exists")
        }
        return id
    }

    static func renameCluster(id: String, name: String, on connection: PostgresConnection) throws {
        do {
            try connection.execute("UPDATE inventory.clusters SET name = \(name) WHERE id = \(id)::uuid")
        } catch let error as PostgresError where error.isUniqueViolation {
            throw RPCError.alreadyExists("a cluster named \(name) already exists")
        }
    }

    /// Replaces the cluster's members with `nodes` (control first).
    static func setClusterNodes(id: String, nodes: [Rampart_Inventory_V1_ClusterNode], on connection: PostgresConnection)
        throws
    {
        try connection.execute("DELETE FROM inventory.cluster_nodes WHERE cluster_id = \(id)::uuid")
        for (position, node) in nodes.enumerated() {
            try connection.execute(
                """
                INSERT INTO inventory.cluster_nodes (device_id, cluster_id, role, position)
                VALUES (\(node.deviceID)::uuid, \(id)::uuid, \(node.role == .clusterControl ? "control" : "data"), \(position))
                """)
        }
    }

    static func deleteCluster(id: String, on connection: PostgresConnection) throws {
        try connection.execute("DELETE FROM inventory.clusters WHERE id = \(id)::uuid")
    }

    private static func millis(_ date: Date) -> Int64 {
        date.unixMillis
    }
}
