import Foundation
import Postgres
import RampartAPI
import RampartBasics
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC

/// R13: after a restore, what the operator still has to do, per device; deploys and HA sync.
struct Checklists: Sendable {
    let service: RestoreCoordinatorService

    /// Opens (or reopens) the checklist of a device that just rejoined.
    static func open(
        for lease: Rampart_Restore_V1_Lease, certificates: [String], inHaPair: Bool, now: Date,
        on connection: PostgresConnection
    ) throws {
        var items: [(key: String, title: String, details: [String])] = []
        items.append(
            (RestoreAPI.Item.reenrollVPNCertificates,
             certificates.isEmpty
                ? "Re-enroll VPN certificates (none were removed)"
                : "Re-enroll the VPN certificates the restore removed (R10)", certificates.sorted()))
        if inHaPair {
            items.append((RestoreAPI.Item.resumeHaSync, "Resume HA synchronisation: rampart ha resume-sync PAIR", []))
        }
        items.append((RestoreAPI.Item.resolveLicensing, "Resolve licensing for the replacement's serial \(lease.replacementSerial)", []))
        items.append(
            (RestoreAPI.Item.reconfigure, "Reconfigure what a backup does not hold (VPN configuration, and any change made since the backup)", []))
        items.append((RestoreAPI.Item.deploy, "Deploy the configuration: rampart deploy DEVICE (use --force if it is not out of date)", []))
        items.append((RestoreAPI.Item.connectDataInterfaces, "Connect the data interfaces", []))
        _ = try connection.execute("DELETE FROM restore.checklists WHERE device_id = \(lease.deviceID)")
        _ = try connection.execute(
            """
            INSERT INTO restore.checklists (device_id, device_name, lease_id, opened_at)
            VALUES (\(lease.deviceID), \(lease.deviceName), \(lease.id)::uuid, \(now))
            """)
        for (position, item) in items.enumerated() {
            _ = try connection.execute(
                """
                INSERT INTO restore.checklist_items (device_id, key, position, title, details)
                VALUES (\(lease.deviceID), \(item.key), \(position), \(item.title), \(item.details))
                """)
        }
        try LeaseStore.emit("restore.checklist.opened", lease, ["items": items.map(\.key).joined(separator: ",")], on: connection)
    }

    /// The checklist of `deviceId`, or NOT_FOUND.
    static func load(_ deviceId: String, on connection: PostgresConnection) throws -> Rampart_Restore_V1_Checklist {
        guard
            let head = try connection.query(
                "SELECT device_id, device_name, lease_id, opened_at FROM restore.checklists WHERE device_id = \(deviceId)"
            ).first
        else { throw RPCError.notFound("device \(deviceId) has no restore checklist: it was not restored by Rampart") }
        var checklist = Rampart_Restore_V1_Checklist()
        checklist.deviceID = try head.decode("device_id")
        checklist.deviceName = try head.decode("device_name")
        checklist.leaseID = try head.decode("lease_id", as: UUID.self).uuidString.lowercased()
        checklist.openedUnixMs = try head.decode("opened_at", as: Date.self).unixMillis
        checklist.items = try connection.query(
            """
            SELECT key, title, details, done_at, done_by FROM restore.checklist_items
            WHERE device_id = \(deviceId) ORDER BY position
            """
        ).map { row in
            var item = Rampart_Restore_V1_ChecklistItem()
            item.key = try row.decode("key")
            item.title = try row.decode("title")
            item.details = try row.decode("details")
            if let done = try row.decodeIfPresent("done_at", as: Date.self) {
                item.done = true
                item.doneUnixMs = done.unixMillis
            }
            item.doneBy = try row.decode("done_by")
            return item
        }
        return checklist
    }

    /// Ticks `key` off when the device has a checklist holding it; returns whether it did.
    @discardableResult
    static func tick(_ deviceId: String, _ key: String, by caller: String, now: Date, on connection: PostgresConnection) throws
        -> Bool
    {
        try connection.execute(
            """
            UPDATE restore.checklist_items SET done_at = \(now), done_by = \(caller)
            WHERE device_id = \(deviceId) AND key = \(key) AND done_at IS NULL
            """) > 0
    }

    func device(_ ref: String) async throws -> Rampart_Inventory_V1_Device {
        guard !ref.isEmpty else { throw RPCError.invalidArgument("name a device (id or name)") }
        var lookup = Rampart_Inventory_V1_GetDeviceRequest()
        lookup.device = ref
        return try await service.inventory(
            InventoryAPI.getDevice, lookup
        ).device
    }

    func get(_ request: Rampart_Restore_V1_GetChecklistRequest) async throws -> Rampart_Restore_V1_ChecklistResponse {
        let device = try await device(request.device)
        return try await service.pool.serve { connection in
            var response = Rampart_Restore_V1_ChecklistResponse()
            response.checklist = try Self.load(device.id, on: connection)
            return response
        }
    }

    func complete(
        _ request: Rampart_Restore_V1_CompleteItemRequest, _ context: RequestContext
    ) async throws -> Rampart_Restore_V1_ChecklistResponse {
        context.audit.subject = request.device
        context.audit.note("item", request.key)
        let device = try await device(request.device)
        let caller = context.caller
        let key = request.key
        return try await service.pool.serve { connection in
            let checklist = try Self.load(device.id, on: connection)
            guard let item = checklist.items.first(where: { $0.key == key }) else {
                throw RPCError.invalidArgument(
                    "no item \(key) on the checklist of \(device.name); items: \(checklist.items.map(\.key).joined(separator: ", "))")
            }
            guard key != RestoreAPI.Item.deploy, key != RestoreAPI.Item.resumeHaSync else {
                throw RPCError.failedPrecondition(
                    key == RestoreAPI.Item.deploy
                        ? "deploy is ticked off by deploying: rampart deploy \(device.name)"
                        : "HA synchronisation is ticked off by resuming it: rampart ha resume-sync PAIR")
            }
            if !item.done {
                try Self.tick(device.id, key, by: caller, now: Date(), on: connection)
                try EventOutbox.append(
                    OutboxEvent(
                        topic: "restore.checklist.item", subject: device.id,
                        attributes: ["device_name": device.name, "item": key, "by": caller]),
                    source: RestoreAPI.serviceName, on: connection)
            }
            var response = Rampart_Restore_V1_ChecklistResponse()
            response.checklist = try Self.load(device.id, on: connection)
            return response
        }
    }

    /// R13: deploy clears the out-of-date flag; a device not out of date needs `force`.
    func deploy(_ request: Rampart_Restore_V1_DeployRequest, _ context: RequestContext) async throws -> Rampart_Restore_V1_DeployResponse {
        context.audit.subject = request.device
        if request.force { context.audit.note("force", "true") }
        let device = try await device(request.device)
        guard device.outOfDate || request.force else {
            throw RPCError.failedPrecondition(
                "\(device.name) is not marked out of date: nothing to deploy; use --force to deploy anyway (R13)")
        }
        guard device.connected else {
            throw RPCError.failedPrecondition("\(device.name) is not connected: it cannot take a deployment now")
        }
        if device.outOfDate {
            var clear = Rampart_Inventory_V1_SetOutOfDateRequest()
            clear.device = device.id
            clear.outOfDate = false
            let _: Rampart_Inventory_V1_DeviceResponse = try await service.inventory(
                InventoryAPI.setOutOfDate, clear)
        }
        let forced = !device.outOfDate
        let caller = context.caller
        let now = Date()
        try await service.pool.serve { connection in
            try Self.tick(device.id, RestoreAPI.Item.deploy, by: caller, now: now, on: connection)
            try EventOutbox.append(
                OutboxEvent(
                    topic: "restore.deployed", subject: device.id,
                    attributes: ["device_name": device.name, "forced": "\(forced)", "by": caller]),
                source: RestoreAPI.serviceName, on: connection)
        }
        context.logger.notice("deployed", metadata: ["device": "\(device.name)", "forced": "\(forced)"])
        var response = Rampart_Restore_V1_DeployResponse()
        response.deviceID = device.id
        response.forced = forced
        response.deployedUnixMs = now.unixMillis
        return response
    }

    /// R13: resumes an HA pair's synchronisation and ticks it off both peers' checklists.
    func resumeHaSync(
        _ request: Rampart_Restore_V1_ResumeHaSyncRequest, _ context: RequestContext
    ) async throws -> Rampart_Restore_V1_ResumeHaSyncResponse {
        context.audit.subject = request.pair
        guard !request.pair.isEmpty else { throw RPCError.invalidArgument("name an HA pair (id or name)") }
        var lookup = Rampart_Inventory_V1_GetHaPairRequest()
        lookup.pair = request.pair
        var pair = try await service.inventory(
            InventoryAPI.getHaPair, lookup
        ).pair
        if pair.syncState != .active {
            var update = Rampart_Inventory_V1_UpdateHaPairRequest()
            update.pair = pair.id
            update.syncState = .active
            pair = try await service.inventory(
                InventoryAPI.updateHaPair, update
            ).pair
        }
        let caller = context.caller
        let now = Date()
        let resumed = pair
        try await service.pool.serve { connection in
            let pair = resumed
            for peer in [pair.primaryID, pair.secondaryID] {
                try Self.tick(peer, RestoreAPI.Item.resumeHaSync, by: caller, now: now, on: connection)
            }
            try EventOutbox.append(
                OutboxEvent(topic: "restore.ha.sync-resumed", subject: pair.id, attributes: ["pair": pair.name, "by": caller]),
                source: RestoreAPI.serviceName, on: connection)
        }
        var response = Rampart_Restore_V1_ResumeHaSyncResponse()
        response.pair = resumed
        return response
    }
}
