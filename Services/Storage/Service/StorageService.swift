import Crypto
import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBasics
import RampartBus
import RampartCrypto
import RampartDatabase
import RampartProto
import RampartRPC
import Synchronization

/// Settings of a storage instance.
public struct StorageConfiguration: Sendable {
    /// The folder holding `objects/` and `uploads/` (shared by every instance).
    public var directory: String
    /// Plaintext bytes per sealed frame of new objects (objects carry theirs in their header).
    public var frameSize: Int = ObjectHeader.defaultFrameSize
    /// Largest object accepted.
    public var maxObjectSize: UInt64 = 64 << 30

    /// Settings for the folder `directory`.
    public init(directory: String) {
        self.directory = directory
    }

    var objectsDirectory: String { directory + "/objects" }
    var uploadsDirectory: String { directory + "/uploads" }
    var trashDirectory: String { directory + "/trash" }

    func objectPath(_ id: String) -> String { "\(objectsDirectory)/\(id.prefix(2))/\(id).obj" }
    func partPath(_ upload: UUID) -> String { "\(uploadsDirectory)/\(upload.uuidString.lowercased()).part" }
}

/// The `storage` service: backup objects, content-addressed (id = SHA-256 of the plain bytes), sealed
/// at rest in frames (`RampartCrypto`), uploaded and read in chunks by offset (docs/storage.md; B6, B12).
public struct StorageService: Sendable {

    let configuration: StorageConfiguration
    let pool: PostgresPool
    let masterKey: MasterKey
    let logger: Logger
    let hashes: UploadHashes
    let verified: VerifiedObjects

    /// The service over `pool`, keeping objects in `configuration.directory`, sealed under `masterKey`.
    public init(configuration: StorageConfiguration, pool: PostgresPool, masterKey: MasterKey, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.masterKey = masterKey
        self.logger = logger
        self.hashes = UploadHashes()
        self.verified = VerifiedObjects()
    }

    /// Migrates the schemas the storage writes to (`events`, `storage`).
    public static func migrate(connection: PostgresConnection, logger: Logger) throws {
        try EventOutbox.migrate(connection: connection, logger: logger)
        try Migrator.migrate(schema: "storage", migrations: StorageMigrations.all, connection: connection, logger: logger)
    }

    /// Creates the folders the service writes to.
    public func prepareDirectories() throws {
        for path in [configuration.objectsDirectory, configuration.uploadsDirectory, configuration.trashDirectory] {
            try Files.makeDirectory(path)
        }
    }

    /// The handlers, ready for a `ServiceHost`.
    public func router() -> ServiceRouter {
        var router = ServiceRouter(for: StorageAPI.self)
        router.register(StorageAPI.beginUpload) { (request: Rampart_Storage_V1_BeginUploadRequest, context) in
            try await beginUpload(request, context)
        }
        // The methods that move or hash archive bytes run off the socket thread (ServiceRouter.register).
        router.register(StorageAPI.uploadChunk, offSocketThread: true) { (request: Rampart_Storage_V1_UploadChunkRequest, context) in
            try await uploadChunk(request, context)
        }
        router.register(StorageAPI.commitUpload, offSocketThread: true) { (request: Rampart_Storage_V1_CommitUploadRequest, context) in
            try await commitUpload(request, context)
        }
        router.register(StorageAPI.abortUpload) { (request: Rampart_Storage_V1_AbortUploadRequest, context) in
            try await abortUpload(request, context)
        }
        router.register(StorageAPI.statObject) { (request: Rampart_Storage_V1_StatObjectRequest, _) in
            try await statObject(request)
        }
        router.register(StorageAPI.readObject, offSocketThread: true) { (request: Rampart_Storage_V1_ReadObjectRequest, context) in
            try await readObject(request, context)
        }
        router.register(StorageAPI.listObjects) { (request: Rampart_Storage_V1_ListObjectsRequest, _) in
            try await listObjects(request)
        }
        router.register(StorageAPI.deleteObject) { (request: Rampart_Storage_V1_DeleteObjectRequest, context) in
            try await deleteObject(request, context)
        }
        router.register(StorageAPI.diffObjects, offSocketThread: true) { (request: Rampart_Storage_V1_DiffObjectsRequest, context) in
            try await diffObjects(request, context)
        }
        router.register(StorageAPI.verify, offSocketThread: true) { (request: Rampart_Storage_V1_VerifyRequest, context) in
            try await verify(request, context)
        }
        return router
    }

    // MARK: helpers

    func transaction<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection, Compensation) throws -> T
    ) async throws -> T {
        try await database {
            try await pool.withConnection { connection in
                let undo = Compensation()
                do {
                    return try connection.transaction { try body($0, undo) }
                } catch {
                    undo.run()
                    throw error
                }
            }
        }
    }

    func emit(
        _ topic: String, _ info: Rampart_Storage_V1_ObjectInfo, _ context: RequestContext,
        on connection: PostgresConnection
    ) throws {
        let attributes = [
            "file_name": info.fileName, "owner": info.owner, "size": "\(info.size)", "caller": context.caller,
        ]
        try EventOutbox.append(
            OutboxEvent(topic: topic, subject: info.objectID, attributes: attributes, message: info),
            source: StorageAPI.serviceName, on: connection)
    }

    /// Logs damage loudly and returns the DATA_LOSS error for the caller.
    func dataLoss(_ objectId: String, _ error: any Error, _ logger: Logger) -> RPCError {
        let frame = (error as? CryptoFormatError)?.frame.map { " at frame \($0)" } ?? ""
        logger.critical(
            "stored object is damaged",
            metadata: ["object": "\(objectId)", "error": "\(error)"])
        return RPCError(.dataLoss, "object \(objectId) is damaged\(frame): \(reason(error))", cause: error)
    }

    func reason(_ error: any Error) -> String {
        if let error = error as? CryptoFormatError { return error.message }
        if let error = error as? ObjectDamage { return error.reason }
        return "\(error)"
    }
}

/// Undo steps for filesystem changes made inside a database transaction, run when it fails.
final class Compensation: @unchecked Sendable {
    private var actions: [() -> Void] = []

    func add(_ action: @escaping () -> Void) { actions.append(action) }

    func run() {
        for action in actions.reversed() { action() }
        actions = []
    }
}

/// Damage found in a stored object other than a frame that does not authenticate.
struct ObjectDamage: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// SHA-256 of uploads as their chunks arrive in this process, keyed by upload, valid only while the
/// database still says the same `received` and `generation` (another instance may have taken chunks).
final class UploadHashes: Sendable {
    private final class Progress: @unchecked Sendable {
        var generation: Int32
        var received: UInt64
        var hasher = SHA256()
        init(generation: Int32) { self.generation = generation; self.received = 0 }
    }

    private let state = Mutex<[UUID: Progress]>([:])

    func start(_ upload: UUID, generation: Int32) {
        state.withLock { $0[upload] = Progress(generation: generation) }
    }

    func advance(_ upload: UUID, generation: Int32, from: UInt64, with data: Data) {
        state.withLock { state in
            guard let progress = state[upload] else { return }
            guard progress.generation == generation, progress.received == from else {
                state[upload] = nil
                return
            }
            progress.hasher.update(data: data)
            progress.received = from + UInt64(data.count)
        }
    }

    /// The digest when this process saw every byte up to `received`.
    func digest(_ upload: UUID, generation: Int32, received: UInt64) -> String? {
        state.withLock { state in
            guard let progress = state[upload], progress.generation == generation, progress.received == received else {
                return nil
            }
            return progress.hasher.finalize().hexString
        }
    }

    func forget(_ upload: UUID) {
        _ = state.withLock { $0.removeValue(forKey: upload) }
    }
}

/// Objects whose whole SHA-256 this process checked, by file identity (inode, size, mtime), so
/// repeated full reads do not hash the whole object again.
final class VerifiedObjects: Sendable {
    private let state = Mutex<Set<String>>([])

    func contains(_ key: String) -> Bool { state.withLock { $0.contains(key) } }

    func insert(_ key: String) {
        state.withLock {
            if $0.count > 10_000 { $0.removeAll() }
            $0.insert(key)
        }
    }
}
