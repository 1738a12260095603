import Crypto
import Foundation
import Logging
import Postgres
import RampartBasics
import RampartBus
import RampartAPI
import RampartCrypto
import RampartDatabase
import RampartProto

/// Why a stored object could not be read for a download.
public struct ObjectReadError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure.
    public enum Kind: Sendable, Equatable {
        /// The object is damaged: a frame that does not authenticate, a wrong length, a missing file, or
        /// content whose SHA-256 is not its id. Nothing more of it may be sent.
        case damaged
        /// The file could not be read (an I/O error other than damage).
        case io
    }

    /// What kind of failure.
    public var kind: Kind
    /// What went wrong, for logs (never key material or plaintext).
    public var reason: String
    /// The frame concerned, when one is.
    public var frame: UInt64?

    /// A failure of `kind` for `reason`.
    public init(_ kind: Kind, _ reason: String, frame: UInt64? = nil) {
        self.kind = kind
        self.reason = reason
        self.frame = frame
    }

    /// The kind, the reason and the frame.
    public var description: String {
        let place = frame.map { " (frame \($0))" } ?? ""
        return "\(kind == .damaged ? "damaged" : "I/O error"): \(reason)\(place)"
    }

    /// The error for anything thrown while opening or reading an object file.
    static func from(_ error: any Error) -> ObjectReadError {
        switch error {
        case let error as ObjectReadError: return error
        case let error as CryptoFormatError: return ObjectReadError(.damaged, error.message, frame: error.frame)
        case let error as ObjectDamage: return ObjectReadError(.damaged, error.reason)
        case let error as FileIOError: return ObjectReadError(.io, error.description)
        default: return ObjectReadError(.io, "\(error)")
        }
    }
}

/// Reads a plaintext range of one stored object, in order, about 1 MiB of whole frames per call, each
/// frame authenticated before any of its bytes is handed out. The blocking reads and the decryption run
/// off Swift's cooperative pool. When the range is the whole object and this file was not verified
/// whole before, the plaintext is also hashed and the call that reads the last frame fails with
/// `.damaged` unless the SHA-256 equals the object's id, so a caller that sends each batch only after
/// fetching the next never sends the last byte of a wrong object. Once verified (here or by
/// ReadObject), later reads rely on each frame's authentication. The sealed bytes of the next batch
/// are read while the current one is decrypted (at most two batches of sealed bytes in memory).
///
/// Not for concurrent use: each call to ``next()`` must end before the next one starts (a download
/// streams its batches in order); ``close()`` comes after the last call.
public final class ObjectRangeReader: @unchecked Sendable {
    /// The object being read.
    public let info: Rampart_Storage_V1_ObjectInfo
    /// The plaintext bytes being read: `lowerBound..<upperBound`.
    public let range: Range<UInt64>

    private let opened: ObjectStore.Opened
    private let verified: VerifiedObjects
    private let batchFrames: UInt64
    private let lastFrame: UInt64
    private var nextFrame: UInt64
    /// The read of the next batch's sealed bytes, started when this batch was handed out.
    private var pendingRead: Task<Data, any Error>?
    private var finished = false
    private var closed = false
    private var hasher: SHA256?

    init(
        info: Rampart_Storage_V1_ObjectInfo, range: Range<UInt64>, opened: ObjectStore.Opened, verified: VerifiedObjects
    ) {
        self.info = info
        self.range = range
        self.opened = opened
        self.verified = verified
        let layout = opened.layout
        let frames = layout.frames(coveringOffset: range.lowerBound, length: range.upperBound - range.lowerBound)
        self.nextFrame = frames.lowerBound
        self.lastFrame = frames.upperBound
        self.batchFrames = UInt64(max(1, (1 << 20) / layout.frameSize))
        // The whole object's SHA-256 is checked the first time this file is read whole (as ReadObject does);
        // after that, each frame's authentication (bound to its index and the final flag) is the check.
        let whole = range.lowerBound == 0 && range.upperBound == layout.plaintextSize
        let identity = (try? opened.file.identity).map { "\(info.objectID):\($0)" }
        self.hasher = whole && !(identity.map(verified.contains) ?? false) ? SHA256() : nil
        if frames.count > 1 { opened.file.adviseSequential() }
    }

    deinit {
        if !closed { opened.file.close() }
    }

    /// Whether the whole object is read and its SHA-256 checked at the end (the first whole read of a file).
    public var checksWholeObject: Bool { hasher != nil }

    /// The next batch of plaintext (possibly empty for an empty object), or nil after the end of the
    /// range. Throws `ObjectReadError`; after a failure nothing more is read.
    public func next() async throws -> Data? {
        guard let pieces = try await nextPieces() else { return nil }
        if pieces.count == 1 { return pieces[0] }
        var data = Data(capacity: pieces.reduce(0) { $0 + $1.count })
        for piece in pieces { data.append(piece) }
        return data
    }

    /// The next batch as the plaintext of its frames, in order, not joined (each piece is a frame, or
    /// the part of one inside the range): a caller that copies them into its own buffer anyway (an
    /// HTTP body) saves a copy. An empty array for an empty object; nil after the end of the range.
    ///
    /// Reading is one batch ahead: while this batch is decrypted (and, in a download, the previous one
    /// is sent), the sealed bytes of the next are already being read, so a read from the disk overlaps
    /// the work instead of waiting in front of it.
    public func nextPieces() async throws -> [Data]? {
        guard !finished, !closed else { return nil }
        let frames = nextFrame...min(lastFrame, nextFrame + batchFrames - 1)
        do {
            let sealed: Data
            if let pending = pendingRead {
                pendingRead = nil
                sealed = try await pending.value
            } else {
                sealed = try await BlockingPool.shared.run { [self] in try ObjectStore.readSealed(opened, frames) }
            }
            nextFrame = frames.upperBound + 1
            if frames.upperBound < lastFrame {
                let following = nextFrame...min(lastFrame, nextFrame + batchFrames - 1)
                pendingRead = Task { try await BlockingPool.shared.run { [self] in try ObjectStore.readSealed(opened, following) } }
            }
            return try await BlockingPool.shared.run { [self] in try self.openBatch(frames, sealed: sealed) }
        } catch {
            finished = true
            throw ObjectReadError.from(error)
        }
    }

    /// Closes the file (once a read ahead in flight has ended); later calls to ``next()`` return nil.
    public func close() {
        guard !closed else { return }
        closed = true
        let file = opened.file
        if let pending = pendingRead {
            pendingRead = nil
            Task { _ = try? await pending.value; file.close() }
        } else {
            file.close()
        }
    }

    private func openBatch(_ frames: ClosedRange<UInt64>, sealed: Data) throws -> [Data] {
        let layout = opened.layout
        var frameStart = layout.plaintextOffset(of: frames.lowerBound)
        var pieces: [Data] = []
        pieces.reserveCapacity(frames.count)
        try ObjectStore.openFrames(opened, frames, sealed: sealed) { plain in
            hasher?.update(data: plain)
            let from = max(range.lowerBound, frameStart)
            let to = min(range.upperBound, frameStart + UInt64(plain.count))
            if from < to {
                let base = plain.startIndex
                let whole = from == frameStart && to == frameStart + UInt64(plain.count)
                pieces.append(whole ? plain : plain[(base + Int(from - frameStart))..<(base + Int(to - frameStart))])
            }
            frameStart += UInt64(plain.count)
        }
        if frames.upperBound == lastFrame {
            finished = true
            if let hasher {
                let digest = hasher.finalize().hexString
                guard digest == info.objectID else {
                    throw ObjectReadError(.damaged, "its content's SHA-256 is \(digest), not its id")
                }
                if let identity = try? opened.file.identity { verified.insert("\(info.objectID):\(identity)") }
            }
        }
        return pieces
    }
}

/// What the `storage.download` event records about one download over HTTP (L2).
public struct DownloadRecord: Sendable, Equatable {
    /// The backup the link was for.
    public var backupId: String
    /// The stored object sent.
    public var objectId: String
    /// The file name of the download.
    public var fileName: String
    /// Body bytes sent.
    public var bytes: UInt64
    /// "full", or the byte range sent as "first-last".
    public var range: String
    /// The id of the key that signed the link.
    public var keyId: String
    /// The link's nonce (tells exports apart).
    public var nonce: String
    /// The client's address, when known.
    public var remote: String
    /// "200" or "206" when the body was sent whole, "incomplete" when it was cut off.
    public var status: String
    /// The HTTP status of the response (200 or 206), also when it was cut off.
    public var httpStatus: Int
    /// The device the backup belongs to, when the link says.
    public var deviceId: String
    /// Its name, when the link says.
    public var deviceName: String

    /// A record with every field given.
    public init(
        backupId: String, objectId: String, fileName: String, bytes: UInt64, range: String, keyId: String,
        nonce: String, remote: String, status: String, httpStatus: Int, deviceId: String = "", deviceName: String = ""
    ) {
        self.backupId = backupId
        self.objectId = objectId
        self.fileName = fileName
        self.bytes = bytes
        self.range = range
        self.keyId = keyId
        self.nonce = nonce
        self.remote = remote
        self.status = status
        self.httpStatus = httpStatus
        self.deviceId = deviceId
        self.deviceName = deviceName
    }

    /// The event's attributes.
    var attributes: [String: String] {
        var attributes = [
            "backup_id": backupId, "object_id": objectId, "file_name": fileName, "bytes": "\(bytes)",
            "range": range, "key_id": keyId, "nonce": nonce, "remote": remote, "status": status,
            "http_status": "\(httpStatus)",
        ]
        if !deviceId.isEmpty { attributes["device_id"] = deviceId }
        if !deviceName.isEmpty { attributes["device_name"] = deviceName }
        return attributes
    }
}

extension StorageService {
    /// The topic of the event recorded for every download over HTTP.
    public static let downloadTopic = "storage.download"

    /// The row of object `id`, or nil when storage holds no such object (or `id` is not a SHA-256).
    /// Throws `RPCError` (`UNAVAILABLE` while the database is unreachable).
    public func objectInfo(id: String) async throws -> Rampart_Storage_V1_ObjectInfo? {
        guard let id = try? StorageRules.sha256(id, field: "object_id") else { return nil }
        return try await database { try await pool.withConnection { try ObjectStore.info(id, on: $0) } }
    }

    /// Opens object `info` to read plaintext bytes `range` (clamped to the object); throws
    /// `ObjectReadError` when its file is missing, damaged or unreadable. Close the reader when done.
    public func openRange(_ info: Rampart_Storage_V1_ObjectInfo, range: Range<UInt64>) async throws
        -> ObjectRangeReader
    {
        let path = configuration.objectPath(info.objectID)
        let masterKey = masterKey
        let opened: ObjectStore.Opened
        do {
            opened = try await BlockingPool.shared.run { try ObjectStore.open(path, masterKey: masterKey, expectedSize: info.size) }
        } catch {
            throw ObjectReadError.from(error)
        }
        let upper = min(range.upperBound, info.size)
        let lower = min(range.lowerBound, upper)
        return ObjectRangeReader(info: info, range: lower..<upper, opened: opened, verified: verified)
    }

    /// Records the `storage.download` event of a download in the outbox (its own transaction); subject
    /// is the backup id. Throws `RPCError` when the database fails.
    public func recordDownload(_ record: DownloadRecord) async throws {
        let event = OutboxEvent(topic: Self.downloadTopic, subject: record.backupId, attributes: record.attributes)
        try await database {
            try await pool.transaction { connection in
                try EventOutbox.append(event, source: StorageAPI.serviceName, on: connection)
            }
        }
    }
}
