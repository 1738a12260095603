import Foundation
import RampartArchive
import RampartBus
import RampartRPC
import Synchronization

/// The exports a device holds between StartExport and FinishExport, each an archive in a file without a
/// name (`ArchiveSpool`), read a chunk at a time, so memory does not grow with them: at most `limit` at once
/// (RESOURCE_EXHAUSTED beyond: the device is busy, try again later), each dropped when not finished within
/// `timeToLiveMs` of its start.
///
/// An export belongs to a task attempt (`Owner`: the backup task's id and the attempt's fencing token),
/// so an interrupted attempt never holds a slot for good: the next attempt of the same task replaces its
/// export, and an export nobody has read for the attempt's lease time is released (that attempt can no
/// longer hold its lease). Time comes from the injected `now` (milliseconds), so tests need no sleeping.
public final class ExportStore: Sendable {
    /// The task attempt an export belongs to.
    public struct Owner: Sendable, Equatable {
        public var taskId: String
        public var token: UInt64
        /// Idle time after which the export is released, ms (0: only the time to live).
        public var leaseMs: Int64

        public init(taskId: String, token: UInt64, leaseMs: Int64) {
            self.taskId = taskId
            self.token = token
            self.leaseMs = leaseMs
        }
    }

    /// One archive being read.
    struct Entry: Sendable {
        var file: ArchiveFile?
        var startedMs: Int64
        var touchedMs: Int64
        var owner: Owner?

        func isLive(at time: Int64, timeToLiveMs: Int64) -> Bool {
            guard time - startedMs < timeToLiveMs else { return false }
            if let owner, owner.leaseMs > 0, time - touchedMs >= owner.leaseMs { return false }
            return true
        }
    }

    /// Exports held at once.
    public let limit: Int
    /// How long an export may stay unfinished, ms.
    public let timeToLiveMs: Int64
    private let now: @Sendable () -> Int64
    private let entries = Mutex<[String: Entry]>([:])

    /// A store of at most `limit` exports, each kept `timeToLiveMs` at most.
    public init(limit: Int = 4, timeToLiveMs: Int64 = 600_000, now: @escaping @Sendable () -> Int64 = { unixMillis() }) {
        self.limit = limit
        self.timeToLiveMs = timeToLiveMs
        self.now = now
    }

    /// Takes a slot for a new export of `owner` and returns its id. An export of an earlier attempt of the
    /// same task is released first; one of a later attempt makes this one stale (FAILED_PRECONDITION).
    /// Throws RESOURCE_EXHAUSTED (retryable: the device is busy) when every slot is taken.
    public func reserve(owner: Owner? = nil) throws -> String {
        let time = now()
        return try entries.withLock { entries in
            entries = entries.filter { $0.value.isLive(at: time, timeToLiveMs: timeToLiveMs) }
            if let owner, !owner.taskId.isEmpty {
                let same = entries.filter { $0.value.owner?.taskId == owner.taskId }
                if let newer = same.values.compactMap(\.owner).first(where: { $0.token > owner.token }) {
                    throw RPCError.failedPrecondition(
                        "a later attempt (token \(newer.token)) of task \(owner.taskId) holds its export: this attempt (token \(owner.token)) is stale")
                }
                for id in same.keys { entries.removeValue(forKey: id) }
            }
            guard entries.count < limit else {
                throw RPCError(
                    .resourceExhausted,
                    "this device is busy: it already holds \(limit) exports; try again shortly (each is released when finished, when its attempt is replaced or stops reading, or after \(timeToLiveMs / 1000) s)")
            }
            let id = UUID().uuidString.lowercased()
            entries[id] = Entry(file: nil, startedMs: time, touchedMs: time, owner: owner)
            return id
        }
    }

    /// Stores the archive of a reserved export (released, and its file's space freed, with the export).
    public func fill(_ id: String, file: ArchiveFile) {
        let time = now()
        entries.withLock { entries in
            entries[id]?.file = file
            entries[id]?.touchedMs = time
        }
    }

    /// Releases an export; true when it was there.
    @discardableResult
    public func remove(_ id: String) -> Bool {
        entries.withLock { $0.removeValue(forKey: id) != nil }
    }

    /// The archive of export `id` (each read keeps its attempt's export alive); NOT_FOUND when unknown,
    /// expired, released or not built yet.
    public func file(_ id: String) throws -> ArchiveFile {
        let time = now()
        return try entries.withLock { entries in
            guard var entry = entries[id] else {
                throw RPCError.notFound(
                    "no export '\(id)' on this device (finished, replaced by a later attempt, released after its attempt stopped reading, expired, or never started)")
            }
            guard entry.isLive(at: time, timeToLiveMs: timeToLiveMs) else {
                entries.removeValue(forKey: id)
                throw RPCError.notFound("export '\(id)' was released: not finished within \(timeToLiveMs / 1000) s, or unread for its attempt's lease")
            }
            guard let file = entry.file else { throw RPCError.notFound("export '\(id)' is still being built") }
            entry.touchedMs = time
            entries[id] = entry
            return file
        }
    }

    /// Drops expired and released exports (called periodically so their files are released without further calls).
    public func prune() {
        let time = now()
        entries.withLock { entries in entries = entries.filter { $0.value.isLive(at: time, timeToLiveMs: timeToLiveMs) } }
    }

    /// Exports held now.
    public var count: Int { entries.withLock { $0.count } }
}
