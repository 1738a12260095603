import Crypto
import Foundation
import Logging
import Postgres
import RampartBasics
import RampartBus
import RampartCrypto
import RampartProto
import RampartRPC

/// An upload's row.
struct UploadRow: Sendable {
    var id: UUID
    var idempotencyKey: String?
    var fileName: String
    var contentType: String
    var owner: String
    var expectedSize: UInt64
    var received: UInt64
    var framesSealed: UInt64
    var pending: Data?
    var generation: Int32
    var committed: Bool
    var objectId: String?

    init(_ row: PostgresRow) throws {
        id = try row.decode("id")
        idempotencyKey = try row.decodeIfPresent("idempotency_key")
        fileName = try row.decode("file_name")
        contentType = try row.decode("content_type")
        owner = try row.decode("owner")
        expectedSize = UInt64(try row.decode("expected_size", as: Int64.self))
        received = UInt64(try row.decode("received", as: Int64.self))
        framesSealed = UInt64(try row.decode("frames_sealed", as: Int64.self))
        pending = try row.decodeIfPresent("pending")
        generation = try row.decode("generation")
        committed = try row.decode("state", as: String.self) == "committed"
        objectId = try row.decodeIfPresent("object_id")
    }
}

/// An open upload under its row lock: the .part file (header and `framesSealed` frames) and the sealer
/// holding the unsealed tail.
struct OpenUpload {
    var row: UploadRow
    var file: FileHandleFD
    var sealer: StreamSealer

    var sealedEnd: UInt64 {
        UInt64(ObjectHeader.size) + row.framesSealed * UInt64(sealer.header.frameSize + ObjectLayout.tagSize)
    }
}

extension StorageService {
    static let uploadColumns: SQL =
        "id, idempotency_key, file_name, content_type, owner, expected_size, received, frames_sealed, pending, generation, state, object_id"

    func lockUpload(_ id: UUID, on connection: PostgresConnection) throws -> UploadRow {
        guard
            let row = try connection.query(
                "SELECT \(unsafeRaw: Self.uploadColumns.text) FROM storage.uploads WHERE id = \(id) FOR UPDATE"
            ).first
        else {
            throw RPCError.notFound("no upload \(id.uuidString.lowercased()) (never begun, aborted, or refused at commit)")
        }
        return try UploadRow(row)
    }

    /// Opens the .part file of a locked, open upload and brings it in line with the row: bytes past the
    /// recorded frames (a write whose transaction failed) are cut off; if frames are missing (lost in a
    /// crash), the upload falls back to the frames present and the client resumes from there.
    func openUpload(_ row: UploadRow, on connection: PostgresConnection, logger: Logger) throws -> OpenUpload {
        var row = row
        let path = configuration.partPath(row.id)
        let file: FileHandleFD
        do {
            file = try FileHandleFD.open(path, O_RDWR)
        } catch let error as FileIOError where error.code == ENOENT {
            throw RPCError(
                .failedPrecondition, "the partial file of upload \(row.id.uuidString.lowercased()) is gone; abort it and upload again")
        }
        do {
            let header = try file.read(ObjectHeader.size, at: 0)
            let frameSize = try ObjectHeader(decoding: header).frameSize
            let stride = UInt64(frameSize + ObjectLayout.tagSize)
            let size = try file.size
            let expected = UInt64(ObjectHeader.size) + row.framesSealed * stride
            if size < expected {
                let present = (size - UInt64(ObjectHeader.size)) / stride
                logger.warning(
                    "upload lost frames in a crash; resuming from the frames present",
                    metadata: ["upload": "\(row.id)", "frames": "\(present)", "recorded": "\(row.framesSealed)"])
                let fresh = try StreamSealer(
                    resuming: header, masterKey: masterKey, framesSealed: present, sealedPending: nil)
                row.framesSealed = present
                row.received = present * UInt64(frameSize)
                row.pending = fresh.sealedPending()
                row.generation += 1
                try connection.execute(
                    """
                    UPDATE storage.uploads SET frames_sealed = \(Int64(present)), received = \(Int64(row.received)),
                        pending = \(row.pending), generation = \(row.generation), updated_at = now()
                    WHERE id = \(row.id)
                    """)
            }
            if size != UInt64(ObjectHeader.size) + row.framesSealed * stride {
                try file.truncate(to: UInt64(ObjectHeader.size) + row.framesSealed * stride)
            }
            let sealer = try StreamSealer(
                resuming: header, masterKey: masterKey, framesSealed: row.framesSealed, sealedPending: row.pending)
            return OpenUpload(row: row, file: file, sealer: sealer)
        } catch let error as CryptoFormatError {
            file.close()
            logger.error("upload's partial file is damaged", metadata: ["upload": "\(row.id)", "error": "\(error)"])
            throw RPCError(
                .dataLoss, "the partial file of upload \(row.id.uuidString.lowercased()) is damaged; abort it and upload again",
                cause: error)
        } catch {
            file.close()
            throw error
        }
    }

    // MARK: BeginUpload

    func beginUpload(
        _ request: Rampart_Storage_V1_BeginUploadRequest, _ context: RequestContext
    ) async throws -> Rampart_Storage_V1_BeginUploadResponse {
        try StorageRules.fileName(request.fileName)
        let contentType = try StorageRules.contentType(request.contentType)
        try StorageRules.owner(request.owner)
        try StorageRules.idempotencyKey(request.idempotencyKey)
        guard request.size <= configuration.maxObjectSize else {
            throw RPCError.invalidArgument("size \(request.size) exceeds the largest object (\(configuration.maxObjectSize) bytes)")
        }
        let key: String? = request.idempotencyKey.isEmpty ? nil : request.idempotencyKey
        let logger = context.logger
        let outcome = try await transaction { connection, undo -> (UUID, UInt64, Int32, Bool) in
            if let key, let existing = try connection.query(
                "SELECT \(unsafeRaw: Self.uploadColumns.text) FROM storage.uploads WHERE idempotency_key = \(key) FOR UPDATE"
            ).first {
                var row = try UploadRow(existing)
                guard row.fileName == request.fileName, row.owner == request.owner, row.contentType == contentType,
                    row.expectedSize == request.size
                else {
                    throw RPCError.failedPrecondition(
                        "idempotency key \(StorageRules.quoted(key)) already belongs to another upload (different name, owner, type or size)")
                }
                if !row.committed {
                    let open = try openUpload(row, on: connection, logger: logger)
                    open.file.close()
                    row = open.row
                }
                return (row.id, row.received, row.generation, false)
            }
            let id = UUID()
            let path = configuration.partPath(id)
            var sealer = StreamSealer(masterKey: masterKey, frameSize: configuration.frameSize)
            _ = try sealer.append(Data())
            let file = try FileHandleFD.open(path, O_WRONLY | O_CREAT | O_EXCL)
            undo.add { Files.remove(path) }
            defer { file.close() }
            try file.write(sealer.headerBytes, at: 0)
            let inserted = try connection.query(
                """
                INSERT INTO storage.uploads (id, idempotency_key, file_name, content_type, owner, expected_size, pending)
                VALUES (\(id), \(key), \(request.fileName), \(contentType), \(request.owner), \(Int64(request.size)),
                        \(sealer.sealedPending()))
                ON CONFLICT (idempotency_key) DO NOTHING RETURNING id
                """)
            guard inserted.count == 1 else {
                // Another instance began the same upload at this moment.
                throw RPCError.unavailable("a concurrent BeginUpload with the same idempotency key; retry")
            }
            return (id, 0, 0, true)
        }
        if outcome.3 { hashes.start(outcome.0, generation: outcome.2) }
        var response = Rampart_Storage_V1_BeginUploadResponse()
        response.uploadID = outcome.0.uuidString.lowercased()
        response.received = outcome.1
        return response
    }

    // MARK: UploadChunk

    func uploadChunk(
        _ request: Rampart_Storage_V1_UploadChunkRequest, _ context: RequestContext
    ) async throws -> Rampart_Storage_V1_UploadChunkResponse {
        let id = try StorageRules.uploadId(request.uploadID)
        guard request.data.count <= StorageRules.maxChunk else {
            throw RPCError.invalidArgument("a chunk holds at most \(StorageRules.maxChunk) bytes, not \(request.data.count)")
        }
        let logger = context.logger
        let maxObjectSize = configuration.maxObjectSize
        let outcome = try await transaction { connection, _ -> (received: UInt64, generation: Int32, from: UInt64?) in
            let row = try lockUpload(id, on: connection)
            let count = UInt64(request.data.count)
            if row.committed {
                guard request.offset + count <= row.received else {
                    throw RPCError.failedPrecondition("upload \(request.uploadID) is already committed")
                }
                return (row.received, row.generation, nil)
            }
            var open = try openUpload(row, on: connection, logger: logger)
            defer { open.file.close() }
            let received = open.row.received
            if request.offset < received && request.offset + count <= received {
                return (received, open.row.generation, nil)  // a repeated chunk: already have it
            }
            guard request.offset == received else {
                throw RPCError.failedPrecondition(
                    "upload \(request.uploadID) expects offset \(received), not \(request.offset)")
            }
            let total = received + count
            if open.row.expectedSize > 0 && total > open.row.expectedSize {
                throw RPCError.failedPrecondition(
                    "upload \(request.uploadID) announced \(open.row.expectedSize) bytes; this chunk would make \(total)")
            }
            guard total <= maxObjectSize else {
                throw RPCError.failedPrecondition("an object holds at most \(maxObjectSize) bytes")
            }
            if count == 0 { return (received, open.row.generation, nil) }
            // With an announced size, a full frame that ends before it is sealed at once (it cannot be the
            // last), so the tail kept in the database stays short.
            let frames = try open.sealer.append(
                request.data, totalSize: open.row.expectedSize > 0 ? open.row.expectedSize : nil)
            if !frames.isEmpty { try open.file.write(frames, at: open.sealedEnd) }
            try connection.execute(
                """
                UPDATE storage.uploads SET received = \(Int64(total)), frames_sealed = \(Int64(open.sealer.framesSealed)),
                    pending = \(open.sealer.sealedPending()), updated_at = now()
                WHERE id = \(id)
                """)
            return (total, open.row.generation, received)
        }
        if let from = outcome.from { hashes.advance(id, generation: outcome.generation, from: from, with: request.data) }
        var response = Rampart_Storage_V1_UploadChunkResponse()
        response.received = outcome.received
        return response
    }

    // MARK: CommitUpload

    enum CommitOutcome: Sendable {
        case stored(Rampart_Storage_V1_ObjectInfo)
        case existing(Rampart_Storage_V1_ObjectInfo)
        case mismatch(actual: String, received: UInt64)
    }

    func commitUpload(
        _ request: Rampart_Storage_V1_CommitUploadRequest, _ context: RequestContext
    ) async throws -> Rampart_Storage_V1_ObjectInfo {
        context.audit.subject = request.sha256
        context.audit.note("upload", request.uploadID)
        let id = try StorageRules.uploadId(request.uploadID)
        let expected = try StorageRules.sha256(request.sha256, field: "sha256")
        let logger = context.logger
        let outcome = try await transaction { connection, undo -> CommitOutcome in
            let row = try lockUpload(id, on: connection)
            if row.committed {
                guard let objectId = row.objectId, objectId == expected else {
                    throw RPCError.failedPrecondition(
                        "upload \(request.uploadID) was committed as object \(row.objectId ?? "?"), not \(expected)")
                }
                guard let info = try ObjectStore.info(objectId, on: connection) else {
                    throw RPCError.notFound("object \(objectId) of upload \(request.uploadID) was deleted since")
                }
                return .existing(info)
            }
            var open = try openUpload(row, on: connection, logger: logger)
            defer { open.file.close() }
            if open.row.expectedSize > 0 && open.row.received != open.row.expectedSize {
                throw RPCError.failedPrecondition(
                    "upload \(request.uploadID) announced \(open.row.expectedSize) bytes but has \(open.row.received); send the rest from offset \(open.row.received)")
            }
            let final = try open.sealer.finish()
            try open.file.write(final, at: open.sealedEnd)
            let actual = try hashes.digest(id, generation: open.row.generation, received: open.row.received)
                ?? Self.plaintextDigest(of: open.file, masterKey: masterKey)
            let partPath = configuration.partPath(id)
            guard actual == expected else {
                try connection.execute("DELETE FROM storage.uploads WHERE id = \(id)")
                Files.remove(partPath)
                return .mismatch(actual: actual, received: open.row.received)
            }
            try connection.execute("SELECT pg_advisory_xact_lock(hashtext(\("storage.object:" + expected))::bigint)")
            if let existing = try ObjectStore.info(expected, on: connection) {
                try Self.markCommitted(id, objectId: expected, on: connection)
                Files.remove(partPath)
                return .existing(existing)
            }
            try open.file.sync()
            let objectPath = configuration.objectPath(expected)
            let folder = (objectPath as NSString).deletingLastPathComponent
            try Files.makeDirectory(folder)
            try Files.rename(partPath, objectPath)
            undo.add { _ = try? Files.rename(objectPath, partPath) }
            try Files.syncDirectory(folder)
            var info = Rampart_Storage_V1_ObjectInfo()
            info.objectID = expected
            info.size = open.row.received
            info.fileName = open.row.fileName
            info.contentType = open.row.contentType
            info.owner = open.row.owner
            info.keyID = masterKey.id
            let created = try connection.query(
                """
                INSERT INTO storage.objects (id, size, file_name, content_type, owner, key_id)
                VALUES (\(expected), \(Int64(info.size)), \(info.fileName), \(info.contentType), \(info.owner), \(info.keyID))
                RETURNING created_at
                """)
            info.createdUnixMs = try created.first?.decode("created_at", as: Date.self).unixMillis ?? 0
            try Self.markCommitted(id, objectId: expected, on: connection)
            try emit("storage.object.stored", info, context, on: connection)
            return .stored(info)
        }
        hashes.forget(id)
        switch outcome {
        case .stored(let info):
            logger.info("object stored", metadata: ["object": "\(info.objectID)", "size": "\(info.size)"])
            return info
        case .existing(let info):
            return info
        case .mismatch(let actual, let received):
            throw RPCError.failedPrecondition(
                "the SHA-256 of the \(received) bytes received is \(actual), not \(expected); the upload was discarded")
        }
    }

    static func markCommitted(_ id: UUID, objectId: String, on connection: PostgresConnection) throws {
        try connection.execute(
            """
            UPDATE storage.uploads SET state = 'committed', object_id = \(objectId), pending = NULL, updated_at = now()
            WHERE id = \(id)
            """)
    }

    /// SHA-256 (hex) of the plaintext of a complete sealed file, every frame authenticated.
    static func plaintextDigest(of file: FileHandleFD, masterKey: MasterKey) throws -> String {
        var hasher = SHA256()
        try ObjectStore.forEachFrame(of: file, masterKey: masterKey) { hasher.update(data: $0) }
        return hasher.finalize().hexString
    }

    // MARK: AbortUpload

    func abortUpload(
        _ request: Rampart_Storage_V1_AbortUploadRequest, _ context: RequestContext
    ) async throws -> Rampart_Storage_V1_AbortUploadResponse {
        let id = try StorageRules.uploadId(request.uploadID)
        try await transaction { connection, _ in
            let row = try lockUpload(id, on: connection)
            guard !row.committed else {
                throw RPCError.failedPrecondition("upload \(request.uploadID) is already committed; delete the object instead")
            }
            try connection.execute("DELETE FROM storage.uploads WHERE id = \(id)")
            Files.remove(configuration.partPath(id))
        }
        hashes.forget(id)
        context.logger.info("upload aborted", metadata: ["upload": "\(id)"])
        return Rampart_Storage_V1_AbortUploadResponse()
    }
}
