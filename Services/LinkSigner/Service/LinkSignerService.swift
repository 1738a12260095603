import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBasics
import RampartBus
import RampartCrypto
import RampartDatabase
import RampartLinks
import RampartProto
import RampartRPC

/// What a link-signer instance needs to know.
public struct LinkSignerConfiguration: Sendable {
    /// Scheme, host and port of storage's HTTP endpoint as the recipients of links reach it
    /// (e.g. `http://backups.example.net:7480`).
    public var baseURL: String
    /// The longest validity a link may have (L2: six hours).
    public var maxValidity: Duration = LinkValidity.maximum
    /// The validity when an export names none (L2: six hours).
    public var defaultValidity: Duration = LinkValidity.default
    /// Deadline of calls to the backup and inventory services.
    public var callTimeout: Duration = .seconds(5)

    /// A configuration for links starting with `baseURL`.
    public init(baseURL: String) {
        self.baseURL = baseURL
    }
}

/// The `link-signer` service (L2): signs download URLs for backup files, checks them for storage's
/// HTTP endpoint, keeps its keys sealed at rest and rotates them, and records every export.
public struct LinkSignerService: Sendable {
    let configuration: LinkSignerConfiguration
    let pool: PostgresPool
    let keys: KeyStore
    let selection: Selection
    let clock: LinkClock
    let logger: Logger

    /// The service over `pool`, with keys sealed under `masterKey`, asking backup and inventory through `client`.
    public init(
        configuration: LinkSignerConfiguration, pool: PostgresPool, masterKey: MasterKey, client: BusClient,
        clock: LinkClock = LinkClock(), logger: Logger
    ) {
        self.configuration = configuration
        self.pool = pool
        self.keys = KeyStore(masterKey: masterKey, maxValidity: configuration.maxValidity)
        self.selection = Selection(client: client, timeout: configuration.callTimeout)
        self.clock = clock
        self.logger = logger
    }

    /// Migrates the schemas link-signer writes to (`events`, `links`).
    public static func migrate(connection: PostgresConnection, logger: Logger) throws {
        try EventOutbox.migrate(connection: connection, logger: logger)
        try Migrator.migrate(schema: "links", migrations: LinksMigrations.all, connection: connection, logger: logger)
    }

    /// Makes the first signing key if there is none, and checks that every key opens under the master key.
    public func prepareKeys(on connection: PostgresConnection) throws {
        try keys.ensureActiveKey(now: clock.now(), on: connection, logger: logger)
        let loaded = try keys.load(on: connection)
        logger.info(
            "link-signing keys loaded",
            metadata: ["active": "\(loaded.ring.active.id)", "keys": "\(loaded.rows.count)"])
    }

    /// The handlers, ready for a `ServiceHost`.
    public func router() -> ServiceRouter {
        var router = ServiceRouter(for: LinksAPI.self)
        // Signs up to thousands of links in one request: not on the socket thread.
        router.register(LinksAPI.exportBackupLinks, offSocketThread: true) { (request: Rampart_Links_V1_ExportBackupLinksRequest, context) in
            try await export(request, context)
        }
        router.register(LinksAPI.verifyLink) { (request: Rampart_Links_V1_VerifyLinkRequest, context) in
            try await verify(request, context)
        }
        router.register(LinksAPI.listKeys) { (_: Rampart_Links_V1_ListKeysRequest, _) in
            try await listKeys()
        }
        router.register(LinksAPI.rotateKey) { (_: Rampart_Links_V1_RotateKeyRequest, context) in
            try await rotate(context)
        }
        router.register(LinksAPI.listExports) { (request: Rampart_Links_V1_ListExportsRequest, _) in
            try await listExports(request)
        }
        return router
    }

    // MARK: ExportBackupLinks

    func export(
        _ request: Rampart_Links_V1_ExportBackupLinksRequest, _ context: RequestContext
    ) async throws -> Rampart_Links_V1_ExportBackupLinksResponse {
        let validity = try validity(seconds: request.validSeconds)
        let (description, backups) = try await selection.backups(request.selector)
        let now = clock.now()
        let signer = try await keys.current(pool: pool).ring.signer(
            at: now, baseURL: configuration.baseURL, maxValidity: configuration.maxValidity)
        var links: [Rampart_Links_V1_BackupLink] = []
        var rows: [BackupLinksCSV.Row] = []
        var nonces: [String] = []
        links.reserveCapacity(backups.count)
        for backup in backups {
            let signed = signer.sign(
                path: LinksAPI.downloadPath(backupId: backup.id, fileName: backup.fileName), now: now, validity: validity)
            var link = Rampart_Links_V1_BackupLink()
            link.backupID = backup.id
            link.deviceID = backup.ownerID
            link.deviceName = backup.ownerName
            link.role = backup.role
            link.fileName = backup.fileName
            link.size = backup.size
            link.sha256 = backup.sha256
            link.createdUnixMs = backup.createdUnixMs
            link.url = signed.url
            link.expiresUnixMs = signed.expires.unixMillis
            link.keyID = signed.keyId
            links.append(link)
            nonces.append(signed.nonce)
            rows.append(
                BackupLinksCSV.Row(
                    deviceName: backup.ownerName, deviceId: backup.ownerID,
                    role: backup.role == .unspecified ? "cluster" : backup.role.label, fileName: backup.fileName,
                    size: backup.size, sha256: backup.sha256, createdAt: Date(unixMillis: backup.createdUnixMs),
                    url: signed.url, expiresAt: signed.expires))
        }
        let exportId = UUID()
        let expires = links.first.map { Date(unixMillis: $0.expiresUnixMs) } ?? now
        let caller = context.caller
        let count = links.count
        let signedNonces = nonces
        let backupIds = links.map(\.backupID)
        let keyIds = links.map(\.keyID)
        try await pool.serve { connection in
            _ = try connection.execute(
                """
                INSERT INTO links.exports (id, requested_by, selector, created_at, expires_at, link_count)
                VALUES (\(exportId), \(caller), \(description), \(now), \(expires), \(count))
                """)
            _ = try connection.execute(
                """
                INSERT INTO links.export_items (export_id, position, backup_id, key_id, nonce)
                SELECT \(exportId), item.position::integer - 1, item.backup_id, item.key_id, item.nonce
                FROM unnest(\(backupIds)::text[], \(keyIds)::text[], \(signedNonces)::text[])
                    WITH ORDINALITY AS item (backup_id, key_id, nonce, position)
                """)
            try EventOutbox.append(
                OutboxEvent(
                    topic: "links.exported", subject: exportId.uuidString.lowercased(),
                    attributes: [
                        "requested_by": caller, "selector": description, "links": "\(count)",
                        "expires_unix_ms": "\(expires.unixMillis)",
                        "backup_ids": backupIds.prefix(50).joined(separator: ","),
                    ]),
                source: LinksAPI.serviceName, on: connection)
        }
        context.logger.info(
            "exported backup links",
            metadata: [
                "export": "\(exportId)", "selector": "\(description)", "links": "\(links.count)", "caller": "\(caller)",
            ])
        context.audit.subject = exportId.uuidString.lowercased()
        context.audit.note("selector", description)
        context.audit.note("links", "\(count)")
        context.audit.note("backup_ids", backupIds.prefix(50).joined(separator: ","))
        var response = Rampart_Links_V1_ExportBackupLinksResponse()
        response.exportID = exportId.uuidString.lowercased()
        response.links = links
        response.csv = BackupLinksCSV.render(rows)
        return response
    }

    func validity(seconds: UInt32) throws -> Duration {
        guard seconds != 0 else { return configuration.defaultValidity }
        let maximum = configuration.maxValidity.components.seconds
        guard Int64(seconds) <= maximum else {
            throw RPCError.invalidArgument("a link is valid for at most \(maximum) s (6h); \(seconds) s was asked")
        }
        return .seconds(Int64(seconds))
    }

    // MARK: VerifyLink

    func verify(
        _ request: Rampart_Links_V1_VerifyLinkRequest, _ context: RequestContext
    ) async throws -> Rampart_Links_V1_VerifyLinkResponse {
        let now = clock.now()
        // A refused link is recorded (every PERMISSION_DENIED is): by its path, never its signature.
        context.audit.note("path", String(request.path.prefix(512)))
        var loaded = try await keys.current(pool: pool)
        var outcome = check(request, now: now, ring: loaded.ring)
        if case .failure(.unknownKey) = outcome {
            // A key rotated in by another instance a moment ago: read the table once more.
            loaded = try await keys.current(pool: pool, forceReload: true)
            outcome = check(request, now: now, ring: loaded.ring)
        }
        let verified: VerifiedLink
        switch outcome {
        case .failure(let refusal):
            throw RPCError(.permissionDenied, refusal.reason)
        case .success(let link):
            verified = link
        }
        // The path was signed by us, so it has our shape; anything else names nothing we serve.
        let rest = verified.path.dropFirst(LinksAPI.downloadPathPrefix.count)
        guard verified.path.hasPrefix(LinksAPI.downloadPathPrefix), let slash = rest.firstIndex(of: "/"),
            UUID(uuidString: String(rest[..<slash])) != nil
        else { throw RPCError.notFound("not found") }
        let backupId = String(rest[..<slash])
        let fileName = String(rest[rest.index(after: slash)...])
        let backup: Rampart_Backup_V1_Backup
        do {
            backup = try await selection.backup(backupId)
        } catch let error as RPCError where error.code == .notFound {
            throw RPCError.notFound("backup \(backupId) no longer exists")
        }
        guard backup.fileName == fileName else { throw RPCError.notFound("backup \(backupId) has no file \(fileName)") }
        var response = Rampart_Links_V1_VerifyLinkResponse()
        response.backupID = backup.id
        response.objectID = backup.objectID
        response.fileName = backup.fileName
        response.size = backup.size
        response.sha256 = backup.sha256
        response.keyID = verified.keyId
        response.nonce = verified.nonce
        response.expiresUnixMs = verified.expires.unixMillis
        response.deviceID = backup.ownerID
        response.deviceName = backup.ownerName
        return response
    }

    func check(_ request: Rampart_Links_V1_VerifyLinkRequest, now: Date, ring: KeyRing) -> Result<VerifiedLink, LinkRefusal> {
        let usable = ring.usable(at: now, maxValidity: configuration.maxValidity)
        return LinkCheck.verify(
            method: request.method, path: request.path, query: request.query, now: now,
            keys: Dictionary(uniqueKeysWithValues: usable.map { ($0.id, $0) }), maxValidity: configuration.maxValidity)
    }

    // MARK: keys

    func listKeys() async throws -> Rampart_Links_V1_ListKeysResponse {
        let loaded = try await keys.current(pool: pool, forceReload: true)
        var response = Rampart_Links_V1_ListKeysResponse()
        response.keys = loaded.rows.reversed().map(keys.info)
        return response
    }

    func rotate(_ context: RequestContext) async throws -> Rampart_Links_V1_RotateKeyResponse {
        let now = clock.now()
        let keys = keys
        let caller = context.caller
        let (active, retired) = try await pool.serve { connection in
            let rotated = try keys.rotate(now: now, on: connection)
            try EventOutbox.append(
                OutboxEvent(
                    topic: "links.key.rotated", subject: rotated.active.id,
                    attributes: ["retired": rotated.retired.id, "requested_by": caller]),
                source: LinksAPI.serviceName, on: connection)
            return rotated
        }
        keys.invalidate()
        context.audit.subject = active.id
        context.audit.note("retired", retired.id)
        context.logger.notice(
            "rotated the link-signing key", metadata: ["active": "\(active.id)", "retired": "\(retired.id)", "caller": "\(caller)"])
        var response = Rampart_Links_V1_RotateKeyResponse()
        response.active = keys.info(active)
        response.retired = keys.info(retired)
        return response
    }

    // MARK: ListExports

    func listExports(_ request: Rampart_Links_V1_ListExportsRequest) async throws -> Rampart_Links_V1_ListExportsResponse {
        let limit = Int(request.limit == 0 ? 50 : min(request.limit, 1000))
        return try await pool.serve { connection in
            let rows = try connection.query(
                """
                SELECT e.id, e.requested_by, e.selector, e.created_at, e.expires_at,
                       coalesce(array_agg(i.backup_id ORDER BY i.position)
                                FILTER (WHERE i.backup_id IS NOT NULL), '{}') AS backup_ids
                FROM links.exports e LEFT JOIN links.export_items i ON i.export_id = e.id
                GROUP BY e.id ORDER BY e.created_at DESC, e.id LIMIT \(limit)
                """)
            var response = Rampart_Links_V1_ListExportsResponse()
            response.exports = try rows.map { row in
                var record = Rampart_Links_V1_ExportRecord()
                record.id = try row.decode("id", as: UUID.self).uuidString.lowercased()
                record.requestedBy = try row.decode("requested_by")
                record.selector = try row.decode("selector")
                record.createdUnixMs = try row.decode("created_at", as: Date.self).unixMillis
                record.expiresUnixMs = try row.decode("expires_at", as: Date.self).unixMillis
                record.backupIds = try row.decode("backup_ids")
                return record
            }
            return response
        }
    }
}
