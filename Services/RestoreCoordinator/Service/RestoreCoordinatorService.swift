import Foundation
import Logging
import Postgres
import RampartAPI
import RampartArchive
import RampartBasics
import RampartBus
import RampartDatabase
import RampartInventory
import RampartProto
import RampartRPC
import SwiftProtobuf
import Synchronization

/// What a restore-coordinator instance needs to know.
public struct RestoreConfiguration: Sendable {
    /// This manager's id (R6): backups taken under another are refused. nil: inventory's (the id the
    /// installation made at its first start), asked once.
    public var managerId: String?
    /// A lease not renewed by a report within this time expires; the next restore may then start.
    public var leaseTTL: Duration = .seconds(60)
    /// Deadline of calls to inventory.
    public var callTimeout: Duration = .seconds(5)

    /// A configuration for manager `managerId` (nil: the installation's, from inventory).
    public init(managerId: String? = nil) {
        self.managerId = managerId
    }
}

/// The installation's manager id once inventory said it (it never changes while inventory runs).
final class KnownManagerId: Sendable {
    let value = Mutex<String?>(nil)
}

/// The `restore-coordinator` service (R1–R14): restore leases with fencing tokens that keep HA pairs
/// and clusters alive while their devices are replaced, the post-restore checklist, deploys.
public struct RestoreCoordinatorService: Sendable {
    let configuration: RestoreConfiguration
    let pool: PostgresPool
    let client: BusClient
    let logger: Logger
    /// Inventory's manager id, once asked (when the configuration names none).
    private let knownManagerId = KnownManagerId()

    /// The service over `pool`, asking inventory through `client`.
    public init(configuration: RestoreConfiguration, pool: PostgresPool, client: BusClient, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.client = client
        self.logger = logger
    }

    /// Migrates the schemas the coordinator writes to (`events`, `restore`).
    public static func migrate(connection: PostgresConnection, logger: Logger) throws {
        try EventOutbox.migrate(connection: connection, logger: logger)
        try Migrator.migrate(schema: "restore", migrations: RestoreMigrations.all, connection: connection, logger: logger)
    }

    /// The handlers, ready for a `ServiceHost`.
    public func router() -> ServiceRouter {
        var router = ServiceRouter(for: RestoreAPI.self)
        router.register(RestoreAPI.requestLease) { (request: Rampart_Restore_V1_RequestLeaseRequest, context) in
            try await requestLease(request, context)
        }
        router.register(RestoreAPI.checkRestore) { (request: Rampart_Restore_V1_RequestLeaseRequest, context) in
            try await checkRestore(request, context)
        }
        router.register(RestoreAPI.reportStep) { (request: Rampart_Restore_V1_ReportStepRequest, context) in
            try await reportStep(request, context)
        }
        router.register(RestoreAPI.reportRejoined) { (request: Rampart_Restore_V1_ReportRejoinedRequest, context) in
            try await reportRejoined(request, context)
        }
        router.register(RestoreAPI.reportFailed) { (request: Rampart_Restore_V1_ReportFailedRequest, context) in
            try await reportFailed(request, context)
        }
        router.register(RestoreAPI.releaseLease) { (request: Rampart_Restore_V1_ReleaseLeaseRequest, context) in
            try await release(request, context)
        }
        router.register(RestoreAPI.getLease) { (request: Rampart_Restore_V1_GetLeaseRequest, _) in
            let id = try Self.leaseId(request.leaseID)
            return try await pool.serve { connection in
                var response = Rampart_Restore_V1_LeaseResponse()
                response.lease = try LeaseStore.get(id, on: connection)
                return response
            }
        }
        router.register(RestoreAPI.listLeases) { (request: Rampart_Restore_V1_ListLeasesRequest, _) in
            try await listLeases(request)
        }
        let checklists = Checklists(service: self)
        router.register(RestoreAPI.getChecklist) { (request: Rampart_Restore_V1_GetChecklistRequest, _) in
            try await checklists.get(request)
        }
        router.register(RestoreAPI.completeItem) { (request: Rampart_Restore_V1_CompleteItemRequest, context) in
            try await checklists.complete(request, context)
        }
        router.register(RestoreAPI.deploy) { (request: Rampart_Restore_V1_DeployRequest, context) in
            try await checklists.deploy(request, context)
        }
        router.register(RestoreAPI.resumeHaSync) { (request: Rampart_Restore_V1_ResumeHaSyncRequest, context) in
            try await checklists.resumeHaSync(request, context)
        }
        return router
    }

    // MARK: RequestLease and CheckRestore

    /// What RequestLease and CheckRestore both establish before the order of restores, from the same
    /// code: the request is well formed, the backup's device is registered, the caller may act for it,
    /// every check but the order (`RestoreChecks.checks`), and whether a newer backup exists.
    struct Assessment: Sendable {
        /// The backup's manifest.
        var manifest: BackupManifest
        /// Inventory's view; nil when the backup's device is not registered (R5, R14).
        var situation: RestoreChecks.Situation?
        /// Every check but the order (empty when the device is not registered).
        var checks: [RestoreChecks.Check]
        /// A newer backup of the device (a warning).
        var newer: NewerBackups.Lookup

        /// The refusal of a backup whose device inventory does not know.
        var unregistered: String {
            "the backup's device \(manifest.deviceName) (\(manifest.deviceId)) is not registered: a backup restores only the appliance it was taken from (R5), and a device is never unregistered to restore it (R14)"
        }
    }

    func assess(
        _ request: Rampart_Restore_V1_RequestLeaseRequest, _ context: RequestContext
    ) async throws -> Assessment {
        guard !ClusterBundle.isBundle(fileName: request.archiveFileName) else {
            throw RPCError.failedPrecondition(ClusterBundle.restoreRefusal(fileName: request.archiveFileName))
        }
        guard request.archiveSha256.utf8.count == 64,
            request.archiveSha256.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { throw RPCError.invalidArgument("archive_sha256 must be 64 lower-case hex digits") }
        guard InventoryRules.isValidSerial(request.facts.serial), !request.facts.model.isEmpty else {
            throw RPCError.invalidArgument(
                "the replacement's facts need its serial (1 to 64 letters and digits) and its model")
        }
        let manifest: BackupManifest
        do {
            manifest = try BackupManifest.decode(request.manifestJson)
        } catch {
            throw RPCError.invalidArgument("manifest_json is not a backup manifest: \(error)")
        }
        // Asked while inventory is: the backup service answers on its own.
        async let newer = newerBackup(of: manifest, archiveSHA256: request.archiveSha256)
        guard let situation = try await situation(manifest: manifest, facts: request.facts) else {
            return Assessment(manifest: manifest, situation: nil, checks: [], newer: .none)
        }
        // A device key restores only the device it is named for (the replacement gets the original's key).
        try context.requireOwnDevice(situation.device.name)
        context.audit.subject = situation.device.id
        context.audit.note("archive", request.archiveFileName)
        context.audit.note("replacement_serial", request.facts.serial)
        return Assessment(
            manifest: manifest, situation: situation, checks: RestoreChecks.checks(situation), newer: await newer)
    }

    func requestLease(
        _ request: Rampart_Restore_V1_RequestLeaseRequest, _ context: RequestContext
    ) async throws -> Rampart_Restore_V1_LeaseResponse {
        let assessment = try await assess(request, context)
        guard let situation = assessment.situation else {
            throw RPCError.failedPrecondition(assessment.unregistered)
        }
        let device = situation.device
        let scope = situation.scope
        let now = Date()
        let lifecycle = self.lifecycle
        let asked = LeaseLifecycle.Request(
            leaseId: UUID().uuidString.lowercased(), situation: situation, checks: assessment.checks,
            archiveFileName: request.archiveFileName, archiveSHA256: request.archiveSha256, cliUser: request.cliUser,
            caller: context.caller)
        let outcome = try await pool.serve { connection -> Result<Rampart_Restore_V1_Lease, RPCError> in
            // One decision per scope at a time (the unique index is the backstop). The lock and the scope's
            // active leases go in one round trip: the server runs them in order, so the read starts after the
            // lock is granted and sees every decision committed before it; its rows stay locked, so no report
            // renews them while this decision stands.
            let read = try connection.pipeline([
                "SELECT pg_advisory_xact_lock(hashtext(\("restore:" + scope)))",
                LeaseStore.active(scope: scope, locked: true),
            ])
            let decision = lifecycle.decide(
                .request(asked, scopeLeases: try read[1].map(LeaseStore.record(from:))), now: now)
            let written = try LeaseStore.apply(decision, now: now, on: connection)
            if let refusal = decision.refusal { return .failure(RPCError.failedPrecondition(refusal)) }
            return .success(try Self.written(asked.leaseId, in: written))
        }
        switch outcome {
        case .failure(let error):
            context.logger.notice("restore refused", metadata: ["device": "\(device.name)", "reason": "\(error.message)"])
            throw error
        case .success(let lease):
            context.logger.notice(
                "restore lease granted",
                metadata: ["device": "\(device.name)", "lease": "\(lease.id)", "token": "\(lease.fencingToken)"])
            var response = Rampart_Restore_V1_LeaseResponse()
            response.lease = lease
            if let newer = assessment.newer.backup { response.newerBackup = newer }
            return response
        }
    }

    /// RequestLease's decision, check by check, recording nothing: no lock, no lease, no request row, no
    /// event (a lease past its time counts as ended, as RequestLease would first expire it).
    func checkRestore(
        _ request: Rampart_Restore_V1_RequestLeaseRequest, _ context: RequestContext
    ) async throws -> Rampart_Restore_V1_CheckRestoreResponse {
        let assessment = try await assess(request, context)
        var response = Rampart_Restore_V1_CheckRestoreResponse()
        guard let situation = assessment.situation else {
            response.checks = [RestoreChecks.Check("own appliance", "R5, R14", reasons: [assessment.unregistered]).message]
            return response
        }
        let now = Date()
        let active = try await pool.serve { connection in
            try connection.query(LeaseStore.active(scope: situation.scope, locked: false)).map(LeaseStore.record(from:))
        }
        let checks = assessment.checks + [LeaseLifecycle.order(situation, scopeLeases: active, at: now)]
        response.checks = checks.map(\.message)
        response.passed = checks.allSatisfy(\.passed)
        response.deviceID = situation.device.id
        response.deviceName = situation.device.name
        switch assessment.newer {
        case .none: break
        case .newer(let backup): response.newerBackup = backup
        case .unknown(let why): response.backupsNotChecked = why
        }
        return response
    }

    /// The newest backup of the manifest's device taken after the one being restored (asked of the
    /// backup service; when it does not answer, the restore goes on without the warning).
    ///
    /// Asked once, not retried: a warning must not hold a restore decision. With no backup instance on the
    /// bus the broker says so at once; a retried call would wait out the whole deadline for one to come,
    /// on every RequestLease and CheckRestore.
    func newerBackup(of manifest: BackupManifest, archiveSHA256: String) async -> NewerBackups.Lookup {
        var request = Rampart_Backup_V1_ListBackupsRequest()
        request.owner = manifest.deviceId
        request.limit = 100
        do {
            let response = try await client.call(
                BackupAPI.listBackups, request, timeout: configuration.callTimeout, idempotent: false)
            return NewerBackups.newest(
                after: archiveSHA256, createdAt: manifest.createdDate, deviceId: manifest.deviceId,
                among: response.backups
            ).map(NewerBackups.Lookup.newer) ?? .none
        } catch {
            logger.notice(
                "newer backups not looked for: the backup service did not answer",
                metadata: ["device": "\(manifest.deviceId)", "error": "\(error)"])
            return .unknown("the backup service did not answer (\(error))")
        }
    }

    /// This manager's id (R6): the configured one, or the installation's, asked of inventory once.
    func managerId() async throws -> String {
        if let configured = configuration.managerId { return configured }
        if let known = knownManagerId.value.withLock({ $0 }) { return known }
        let manager = try await inventory(
            InventoryAPI.getManager, Rampart_Inventory_V1_GetManagerRequest())
        knownManagerId.value.withLock { $0 = manager.managerID }
        return manager.managerID
    }

    /// Inventory's view of the backup's device, its pair or cluster; nil when the device is not registered.
    func situation(manifest: BackupManifest, facts: Rampart_Restore_V1_DeviceFacts) async throws -> RestoreChecks.Situation? {
        let managerId = try await managerId()
        func situation(
            _ device: Rampart_Inventory_V1_Device, pair: Rampart_Inventory_V1_HaPair? = nil,
            cluster: Rampart_Inventory_V1_ClusterResponse? = nil
        ) -> RestoreChecks.Situation {
            var situation = RestoreChecks.Situation(
                manifest: manifest, facts: facts, device: device, managerId: managerId)
            situation.pair = pair
            situation.cluster = cluster?.cluster
            situation.clusterDevices = cluster?.devices ?? []
            return situation
        }
        // A pair's or a cluster's member: one call gives the deployment and its devices, this one included.
        if !manifest.haPairId.isEmpty, let response = try await haPair(manifest.haPairId),
            let device = response.devices.first(where: { $0.id == manifest.deviceId && $0.haPairID == response.pair.id })
        {
            return situation(device, pair: response.pair)
        }
        if !manifest.clusterId.isEmpty, let response = try await cluster(manifest.clusterId),
            let device = response.devices.first(where: { $0.id == manifest.deviceId && $0.clusterID == response.cluster.id })
        {
            return situation(device, cluster: response)
        }
        // A standalone device, or one whose deployment changed since the backup: the device first.
        var lookup = Rampart_Inventory_V1_GetDeviceRequest()
        lookup.device = manifest.deviceId
        guard
            let device = try await unlessNotFound({
                try await inventory(InventoryAPI.getDevice, lookup)
            })?.device
        else { return nil }
        let pairResponse = try await device.haPairID.isEmpty ? nil : haPair(device.haPairID)
        let clusterResponse = try await device.clusterID.isEmpty ? nil : cluster(device.clusterID)
        return situation(device, pair: pairResponse?.pair, cluster: clusterResponse)
    }

    /// HA pair `id` with its devices, or nil when inventory has no such pair.
    func haPair(_ id: String) async throws -> Rampart_Inventory_V1_HaPairResponse? {
        var request = Rampart_Inventory_V1_GetHaPairRequest()
        request.pair = id
        return try await unlessNotFound {
            try await inventory(InventoryAPI.getHaPair, request)
        }
    }

    /// Cluster `id` with its devices, or nil when inventory has no such cluster.
    func cluster(_ id: String) async throws -> Rampart_Inventory_V1_ClusterResponse? {
        var request = Rampart_Inventory_V1_GetClusterRequest()
        request.cluster = id
        return try await unlessNotFound {
            try await inventory(InventoryAPI.getCluster, request)
        }
    }

    /// `body`'s answer, or nil when it is NOT_FOUND; any other failure (UNAVAILABLE…) is thrown, never
    /// mistaken for a missing pair or cluster.
    func unlessNotFound<T>(_ body: () async throws -> T) async throws -> T? {
        do {
            return try await body()
        } catch let error as RPCError where error.code == .notFound {
            return nil
        }
    }

    func inventory<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws -> Response {
        try await client.call(method, request, timeout: configuration.callTimeout, idempotent: false)
    }

    // MARK: reports under a lease

    /// The lease machine with this instance's time to live.
    var lifecycle: LeaseLifecycle { LeaseLifecycle(timeToLive: configuration.leaseTTL) }

    /// The lease `id` as `written` by a decision that was accepted.
    static func written(_ id: String, in written: [String: Rampart_Restore_V1_Lease]) throws -> Rampart_Restore_V1_Lease {
        guard let lease = written[id] else { throw RPCError.internalError("restore lease \(id) was decided on but not written") }
        return lease
    }

    /// Locks lease `leaseId`, asks the lease machine about `event` (made from the locked lease) and, when it
    /// accepts and a device's `context` is given, checks the caller may act for the lease's device; then
    /// applies the decision. A refusal's actions are applied too (a lease found past its time is expired)
    /// and committed.
    func decided(
        _ leaseId: String, now: Date, context: RequestContext? = nil,
        _ event: @escaping @Sendable (LeaseLifecycle.Lease) -> LeaseLifecycle.Event
    ) async throws -> Rampart_Restore_V1_Lease {
        let id = try Self.leaseId(leaseId)
        let lifecycle = self.lifecycle
        return try await pool.serve { connection -> Result<Rampart_Restore_V1_Lease, RPCError> in
            let lease = try LeaseStore.lock(id, on: connection)
            let decision = lifecycle.decide(event(lease), now: now)
            if decision.accepted, let context, let refusal = Self.notOwn(lease.message, context) {
                return .failure(refusal)
            }
            let written = try LeaseStore.apply(decision, now: now, on: connection)
            if let refusal = decision.refusal { return .failure(RPCError.failedPrecondition(refusal)) }
            return .success(try Self.written(lease.id, in: written))
        }.get()
    }

    /// A refusal when a device key reports on a lease of another device (docs/security.md).
    static func notOwn(_ lease: Rampart_Restore_V1_Lease, _ context: RequestContext) -> RPCError? {
        context.audit.subject = lease.deviceID
        context.audit.note("lease", lease.id)
        do {
            try context.requireOwnDevice(lease.deviceName)
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            return RPCError.permissionDenied("\(error)")
        }
    }

    func reportStep(
        _ request: Rampart_Restore_V1_ReportStepRequest, _ context: RequestContext
    ) async throws -> Rampart_Restore_V1_LeaseResponse {
        guard !request.step.isEmpty, request.step.utf8.count <= 64 else {
            throw RPCError.invalidArgument("step must be 1 to 64 characters")
        }
        let lease = try await decided(request.leaseID, now: Date(), context: context) { lease in
            .reportStep(
                lease, token: request.fencingToken, step: request.step, detail: request.detail,
                removedVPNCertificates: request.removedVpnCertificates)
        }
        var response = Rampart_Restore_V1_LeaseResponse()
        response.lease = lease
        return response
    }

    func reportFailed(
        _ request: Rampart_Restore_V1_ReportFailedRequest, _ context: RequestContext
    ) async throws -> Rampart_Restore_V1_LeaseResponse {
        let lease = try await decided(request.leaseID, now: Date(), context: context) { lease in
            .reportFailed(lease, token: request.fencingToken, reason: request.reason)
        }
        context.logger.warning("restore failed on the device", metadata: ["lease": "\(lease.id)", "reason": "\(request.reason)"])
        var response = Rampart_Restore_V1_LeaseResponse()
        response.lease = lease
        return response
    }

    func reportRejoined(
        _ request: Rampart_Restore_V1_ReportRejoinedRequest, _ context: RequestContext
    ) async throws -> Rampart_Restore_V1_LeaseResponse {
        let now = Date()
        let id = try Self.leaseId(request.leaseID)
        let lifecycle = self.lifecycle
        /// The lease locked, and whether it passed the commit point.
        @Sendable func read(_ connection: PostgresConnection) throws -> (LeaseLifecycle.Lease, Bool) {
            let rows = try connection.pipeline([
                LeaseStore.locking(id), LeaseStore.hasStep(id, LeaseLifecycle.commitPoint),
            ])
            return (try LeaseStore.found(id, rows[0]), try rows[1].first?.decode("recorded", as: Bool.self) ?? false)
        }
        // Peek first (without holding a lock across inventory calls): token and state must be right. Only a
        // refusal is applied here (a lease found past its time is expired); the rejoin is decided again below.
        let current = try await pool.serve { connection -> Result<Rampart_Restore_V1_Lease, RPCError> in
            let (lease, passed) = try read(connection)
            let decision = lifecycle.decide(
                .rejoin(lease, token: request.fencingToken, passedCommitPoint: passed, inHaPair: false), now: now)
            guard let refusal = decision.refusal else { return .success(lease.message) }
            try LeaseStore.apply(decision, now: now, on: connection)
            return .failure(RPCError.failedPrecondition(refusal))
        }.get()
        if let refusal = Self.notOwn(current, context) { throw refusal }
        var lookup = Rampart_Inventory_V1_GetDeviceRequest()
        lookup.device = current.deviceID
        let device = try await inventory(InventoryAPI.getDevice, lookup)
            .device
        guard device.connected else {
            throw RPCError.failedPrecondition(
                "\(device.name) has not reconnected yet: report presence as the restored device first (R9)")
        }
        // R9: the restored device shows as out of date; inventory now knows the replacement's serial.
        if device.serial != current.replacementSerial {
            var update = Rampart_Inventory_V1_UpdateDeviceRequest()
            update.device = device.id
            update.fields = ["serial"]
            update.values.serial = current.replacementSerial
            let _: Rampart_Inventory_V1_DeviceResponse = try await inventory(
                InventoryAPI.updateDevice, update)
        }
        var outOfDate = Rampart_Inventory_V1_SetOutOfDateRequest()
        outOfDate.device = device.id
        outOfDate.outOfDate = true
        let _: Rampart_Inventory_V1_DeviceResponse = try await inventory(
            InventoryAPI.setOutOfDate, outOfDate)
        let inPair = !device.haPairID.isEmpty
        if inPair {
            // R13: the restored peer is back without HA synchronisation; the pair says so until an operator
            // resumes it (`rampart ha resume-sync`, which ticks the checklist item). Not a suspension (R7).
            var lookup = Rampart_Inventory_V1_GetHaPairRequest()
            lookup.pair = device.haPairID
            let pair = try await inventory(InventoryAPI.getHaPair, lookup)
                .pair
            if pair.syncState != .resumeNeeded {
                var update = Rampart_Inventory_V1_UpdateHaPairRequest()
                update.pair = pair.id
                update.syncState = .resumeNeeded
                let _: Rampart_Inventory_V1_HaPairResponse = try await inventory(
                    InventoryAPI.updateHaPair, update)
            }
        }
        // Decided again under the lock: a lease that ended after the commit point becomes rejoined, saying
        // how it had ended; the checklist opens.
        let lease = try await pool.serve { connection -> Result<Rampart_Restore_V1_Lease, RPCError> in
            let (lease, passed) = try read(connection)
            let decision = lifecycle.decide(
                .rejoin(lease, token: request.fencingToken, passedCommitPoint: passed, inHaPair: inPair), now: now)
            let written = try LeaseStore.apply(decision, now: now, on: connection)
            if let refusal = decision.refusal { return .failure(RPCError.failedPrecondition(refusal)) }
            return .success(try Self.written(lease.id, in: written))
        }.get()
        context.logger.notice(
            "device restored and rejoined", metadata: ["device": "\(lease.deviceName)", "lease": "\(lease.id)"])
        var response = Rampart_Restore_V1_LeaseResponse()
        response.lease = lease
        return response
    }

    func release(
        _ request: Rampart_Restore_V1_ReleaseLeaseRequest, _ context: RequestContext
    ) async throws -> Rampart_Restore_V1_LeaseResponse {
        let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else { throw RPCError.invalidArgument("a forced release needs a reason (it is audited)") }
        context.audit.note("lease", request.leaseID)
        context.audit.note("reason", reason)
        let caller = context.caller
        let lease = try await decided(request.leaseID, now: Date()) { .release($0, reason: reason, by: caller) }
        context.audit.subject = lease.deviceID
        context.logger.notice(
            "restore lease released by force", metadata: ["lease": "\(lease.id)", "by": "\(caller)", "reason": "\(reason)"])
        var response = Rampart_Restore_V1_LeaseResponse()
        response.lease = lease
        return response
    }

    // MARK: ListLeases

    func listLeases(_ request: Rampart_Restore_V1_ListLeasesRequest) async throws -> Rampart_Restore_V1_ListLeasesResponse {
        let limit = Int(request.limit == 0 ? 50 : min(request.limit, 1000))
        let device = request.device
        let activeOnly = request.activeOnly
        let now = Date()
        let lifecycle = self.lifecycle
        return try await pool.serve { connection in
            _ = try Self.expireOverdue(lifecycle, now: now, on: connection)
            let rows = try connection.query(
                """
                SELECT \(unsafeRaw: LeaseStore.columns) FROM restore.leases
                WHERE (\(device) = '' OR device_id = \(device) OR device_name = \(device))
                  AND (NOT \(activeOnly) OR state = 'active')
                ORDER BY granted_at DESC, id LIMIT \(limit)
                """)
            var response = Rampart_Restore_V1_ListLeasesResponse()
            response.leases = try rows.map(LeaseStore.lease(from:))
            return response
        }
    }

    // MARK: expiry

    /// Ends leases whose devices went silent; run every second by `LeaseExpiry`.
    func expireOverdue() async throws -> Int {
        let now = Date()
        let lifecycle = self.lifecycle
        let expired = try await pool.serve { try Self.expireOverdue(lifecycle, now: now, on: $0) }
        for lease in expired {
            logger.warning(
                "restore lease expired: the device went silent", metadata: ["device": "\(lease.deviceName)", "lease": "\(lease.id)"])
        }
        return expired.count
    }

    /// Reads the active leases past their time at `now` (locked; those another call holds are left to it),
    /// lets the lease machine expire them (a tick) and applies that; returns them, expired.
    static func expireOverdue(
        _ lifecycle: LeaseLifecycle, now: Date, on connection: PostgresConnection
    ) throws -> [LeaseLifecycle.Lease] {
        let active = try connection.query(LeaseStore.overdue(now: now)).map(LeaseStore.record(from:))
        let decision = lifecycle.decide(.tick(active), now: now)
        try LeaseStore.apply(decision, now: now, on: connection)
        return decision.expired
    }

    static func leaseId(_ text: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw RPCError.invalidArgument("lease id \(text) is not a UUID") }
        return id
    }
}

/// Ends silent devices' leases every `interval` (a ServiceLifecycle service next to the host).
public struct LeaseExpiry: Sendable {
    let service: RestoreCoordinatorService
    let interval: Duration

    /// Sweeps `service`'s leases every `interval`.
    public init(service: RestoreCoordinatorService, interval: Duration = .seconds(1)) {
        self.service = service
        self.interval = interval
    }

    /// Runs until cancelled; database trouble is logged and retried at the next tick.
    public func run() async {
        while !Task.isCancelled {
            do {
                _ = try await service.expireOverdue()
            } catch {
                service.logger.warning("could not expire leases", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}
