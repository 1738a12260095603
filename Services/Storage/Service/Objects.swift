import Crypto
import Foundation
import Logging
import Postgres
import RampartBasics
import RampartBus
import RampartCrypto
import RampartDatabase
import RampartProto
import RampartRPC

/// Object rows and sealed object files.
enum ObjectStore {
    static let columns = "id, size, file_name, content_type, owner, key_id, created_at"

    static func info(from row: PostgresRow) throws -> Rampart_Storage_V1_ObjectInfo {
        var info = Rampart_Storage_V1_ObjectInfo()
        info.objectID = try row.decode("id")
        info.size = UInt64(try row.decode("size", as: Int64.self))
        info.fileName = try row.decode("file_name")
        info.contentType = try row.decode("content_type")
        info.owner = try row.decode("owner")
        info.keyID = try row.decode("key_id")
        info.createdUnixMs = try row.decode("created_at", as: Date.self).unixMillis
        return info
    }

    static func info(_ id: String, on connection: PostgresConnection) throws -> Rampart_Storage_V1_ObjectInfo? {
        try connection.query("SELECT \(unsafeRaw: columns) FROM storage.objects WHERE id = \(id)").first.map(info(from:))
    }

    /// An opened object file: its opener and layout, checked against the size the database records.
    struct Opened {
        var file: FileHandleFD
        var opener: StreamOpener
        var layout: ObjectLayout
    }

    /// Opens the sealed file at `path`; throws `ObjectDamage` or `CryptoFormatError` when it is missing,
    /// unreadable as a sealed object, or of another size than `expectedSize`.
    static func open(_ path: String, masterKey: MasterKey, expectedSize: UInt64?) throws -> Opened {
        let file: FileHandleFD
        do {
            file = try FileHandleFD.open(path, O_RDONLY)
        } catch let error as FileIOError where error.code == ENOENT {
            throw ObjectDamage(reason: "its file is missing")
        }
        do {
            let opener = try StreamOpener(header: try file.read(ObjectHeader.size, at: 0), masterKey: masterKey)
            let layout = try opener.layout(sealedSize: try file.size)
            if let expectedSize, layout.plaintextSize != expectedSize {
                throw ObjectDamage(
                    reason: "its file holds \(layout.plaintextSize) bytes but \(expectedSize) were stored (truncated or extended)")
            }
            return Opened(file: file, opener: opener, layout: layout)
        } catch {
            file.close()
            throw error
        }
    }

    /// Calls `body` with the plaintext of every frame in order, each authenticated.
    static func forEachFrame(of file: FileHandleFD, masterKey: MasterKey, _ body: (Data) throws -> Void) throws {
        let opener = try StreamOpener(header: try file.read(ObjectHeader.size, at: 0), masterKey: masterKey)
        let layout = try opener.layout(sealedSize: try file.size)
        try forEachFrame(Opened(file: file, opener: opener, layout: layout), body)
    }

    static func forEachFrame(_ opened: Opened, _ body: (Data) throws -> Void) throws {
        let layout = opened.layout
        let batch = max(1, (1 << 20) / layout.frameSize)
        var frame: UInt64 = 0
        while frame < layout.frameCount {
            let last = min(layout.frameCount - 1, frame + UInt64(batch) - 1)
            try readFrames(opened, frame...last, body)
            frame = last + 1
        }
    }

    /// Reads frames `range` in one read and hands each one's plaintext to `body`.
    static func readFrames(_ opened: Opened, _ range: ClosedRange<UInt64>, _ body: (Data) throws -> Void) throws {
        try openFrames(opened, range, sealed: try readSealed(opened, range), body)
    }

    /// The sealed bytes of frames `range`, in one read; throws `ObjectDamage` when the file is shorter.
    static func readSealed(_ opened: Opened, _ range: ClosedRange<UInt64>) throws -> Data {
        let layout = opened.layout
        let start = layout.sealedOffset(of: range.lowerBound)
        let end = layout.sealedOffset(of: range.upperBound) + UInt64(layout.sealedLength(of: range.upperBound))
        let sealed = try opened.file.read(Int(end - start), at: start)
        guard sealed.count == Int(end - start) else { throw ObjectDamage(reason: "its file changed while being read") }
        return sealed
    }

    /// Authenticates and decrypts frames `range` from `sealed` (as ``readSealed(_:_:)`` returned them),
    /// handing each one's plaintext to `body` in order.
    static func openFrames(
        _ opened: Opened, _ range: ClosedRange<UInt64>, sealed: Data, _ body: (Data) throws -> Void
    ) throws {
        let layout = opened.layout
        var position = sealed.startIndex
        for frame in range {
            let length = layout.sealedLength(of: frame)
            try body(
                opened.opener.open(
                    frame: frame, sealed: sealed[position..<(position + length)], isFinal: layout.isFinal(frame)))
            position += length
        }
    }
}

extension StorageService {
    // MARK: StatObject, ListObjects

    func statObject(_ request: Rampart_Storage_V1_StatObjectRequest) async throws -> Rampart_Storage_V1_ObjectInfo {
        let id = try StorageRules.sha256(request.objectID, field: "object_id")
        guard let info = try await database({ try await pool.withConnection { try ObjectStore.info(id, on: $0) } }) else {
            throw RPCError.notFound("no object \(id)")
        }
        return info
    }

    func listObjects(_ request: Rampart_Storage_V1_ListObjectsRequest) async throws -> Rampart_Storage_V1_ListObjectsResponse {
        try StorageRules.owner(request.owner)
        let owner = request.owner
        return try await database {
            try await pool.withConnection { connection in
                let rows = try connection.query(
                    """
                    SELECT \(unsafeRaw: ObjectStore.columns) FROM storage.objects
                    WHERE \(owner) = '' OR owner = \(owner) ORDER BY created_at, id
                    """)
                var response = Rampart_Storage_V1_ListObjectsResponse()
                response.objects = try rows.map(ObjectStore.info(from:))
                return response
            }
        }
    }

    // MARK: ReadObject

    func readObject(
        _ request: Rampart_Storage_V1_ReadObjectRequest, _ context: RequestContext
    ) async throws -> Rampart_Storage_V1_ReadObjectResponse {
        let id = try StorageRules.sha256(request.objectID, field: "object_id")
        guard request.length <= StorageRules.maxChunk else {
            throw RPCError.invalidArgument("length is at most \(StorageRules.maxChunk) bytes (0 means that much)")
        }
        let length = UInt64(request.length == 0 ? UInt32(StorageRules.maxChunk) : request.length)
        let info = try await statObject(.with { $0.objectID = id })
        guard request.offset <= info.size else {
            throw RPCError(.outOfRange, "offset \(request.offset) is past the end of object \(id) (\(info.size) bytes)")
        }
        let path = configuration.objectPath(id)
        let masterKey = masterKey
        let verified = verified
        let logger = context.logger
        do {
            return try await BlockingPool.shared.run {
                let opened = try ObjectStore.open(path, masterKey: masterKey, expectedSize: info.size)
                defer { opened.file.close() }
                let layout = opened.layout
                let end = min(info.size, request.offset + length)
                var data = Data(capacity: Int(end - request.offset))
                let frames = layout.frames(coveringOffset: request.offset, length: end - request.offset)
                var frameStart = layout.plaintextOffset(of: frames.lowerBound)
                var whole = SHA256()
                let coversAll = request.offset == 0 && end == info.size
                try ObjectStore.readFrames(opened, frames) { plain in
                    if coversAll { whole.update(data: plain) }
                    let from = max(request.offset, frameStart) - frameStart
                    let to = min(end, frameStart + UInt64(plain.count)) - frameStart
                    if from < to { data.append(plain[plain.startIndex + Int(from)..<plain.startIndex + Int(to)]) }
                    frameStart += UInt64(plain.count)
                }
                let eof = end == info.size
                if eof {
                    // The end of a read: the whole object's SHA-256 must match its id.
                    let identity = "\(id):\(try opened.file.identity)"
                    if !verified.contains(identity) {
                        let digest: String
                        if coversAll {
                            digest = whole.finalize().hexString
                        } else {
                            var hasher = SHA256()
                            try ObjectStore.forEachFrame(opened) { hasher.update(data: $0) }
                            digest = hasher.finalize().hexString
                        }
                        guard digest == id else {
                            throw ObjectDamage(reason: "its content's SHA-256 is \(digest), not its id")
                        }
                        verified.insert(identity)
                    }
                }
                var response = Rampart_Storage_V1_ReadObjectResponse()
                response.data = data
                response.eof = eof
                return response
            }
        } catch let error as FileIOError {
            throw error.rpcError
        } catch let error as RPCError {
            throw error
        } catch {
            throw dataLoss(id, error, logger)
        }
    }

    // MARK: DeleteObject

    func deleteObject(
        _ request: Rampart_Storage_V1_DeleteObjectRequest, _ context: RequestContext
    ) async throws -> Rampart_Storage_V1_DeleteObjectResponse {
        context.audit.subject = request.objectID
        let id = try StorageRules.sha256(request.objectID, field: "object_id")
        let path = configuration.objectPath(id)
        let trash = "\(configuration.trashDirectory)/\(id).\(UUID().uuidString.lowercased())"
        let trashed = try await transaction { connection, undo -> Bool in
            try connection.execute("SELECT pg_advisory_xact_lock(hashtext(\("storage.object:" + id))::bigint)")
            guard
                let row = try connection.query("DELETE FROM storage.objects WHERE id = \(id) RETURNING \(unsafeRaw: ObjectStore.columns)").first
            else {
                throw RPCError.notFound("no object \(id)")
            }
            try emit("storage.object.deleted", try ObjectStore.info(from: row), context, on: connection)
            do {
                try Files.rename(path, trash)
            } catch let error as FileIOError where error.code == ENOENT {
                context.logger.warning("deleted an object whose file was already missing", metadata: ["object": "\(id)"])
                return false
            }
            undo.add { _ = try? Files.rename(trash, path) }
            return true
        }
        if trashed { Files.remove(trash) }
        context.logger.info("object deleted", metadata: ["object": "\(id)"])
        return Rampart_Storage_V1_DeleteObjectResponse()
    }

    // MARK: Verify

    func verify(
        _ request: Rampart_Storage_V1_VerifyRequest, _ context: RequestContext
    ) async throws -> Rampart_Storage_V1_VerifyResponse {
        let sample = Int(request.sample)
        let objects = try await database {
            try await pool.withConnection { connection in
                try connection.query(
                    sample == 0
                        ? "SELECT \(unsafeRaw: ObjectStore.columns) FROM storage.objects ORDER BY id"
                        : "SELECT \(unsafeRaw: ObjectStore.columns) FROM storage.objects ORDER BY random() LIMIT \(sample)"
                ).map(ObjectStore.info(from:))
            }
        }
        var response = Rampart_Storage_V1_VerifyResponse()
        for info in objects {
            try Task.checkCancellation()
            if let reason = try await check(info) {
                let frame = reason.frame.map { " (frame \($0))" } ?? ""
                context.logger.critical(
                    "stored object is damaged", metadata: ["object": "\(info.objectID)", "reason": "\(reason.text)\(frame)"])
                var damage = Rampart_Storage_V1_Damage()
                damage.objectID = info.objectID
                damage.fileName = info.fileName
                damage.reason = reason.text + frame
                response.damaged.append(damage)
            }
            response.checked += 1
        }
        context.logger.info(
            "verified objects", metadata: ["checked": "\(response.checked)", "damaged": "\(response.damaged.count)"])
        return response
    }

    /// Why the object is damaged (nil when it is whole): every frame decrypted, size and SHA-256 checked.
    func check(_ info: Rampart_Storage_V1_ObjectInfo) async throws -> (text: String, frame: UInt64?)? {
        let path = configuration.objectPath(info.objectID)
        let masterKey = masterKey
        do {
            return try await BlockingPool.shared.run { () -> (text: String, frame: UInt64?)? in
                let opened = try ObjectStore.open(path, masterKey: masterKey, expectedSize: info.size)
                defer { opened.file.close() }
                var hasher = SHA256()
                try ObjectStore.forEachFrame(opened) { hasher.update(data: $0) }
                let digest = hasher.finalize().hexString
                return digest == info.objectID ? nil : ("its content's SHA-256 is \(digest), not its id", nil)
            }
        } catch let error as CryptoFormatError {
            return (error.message, error.frame)
        } catch let error as ObjectDamage {
            return (error.reason, nil)
        } catch let error as FileIOError {
            if error.isNoSpace { throw error.rpcError }
            return ("its file cannot be read: \(error)", nil)
        }
    }
}
