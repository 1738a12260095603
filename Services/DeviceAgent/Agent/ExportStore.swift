import Foundation
import RampartBus
import Synchronization

/// The exports a device holds in memory between StartExport and FinishExport: at most `limit` at once
/// (RESOURCE_EXHAUSTED beyond), each dropped when not finished within `timeToLiveMs` of its start.
/// Time comes from the injected `now` (milliseconds), so tests need no sleeping.
public final class ExportStore: Sendable {
    /// One archive being read.
    struct Entry: Sendable {
        var data: Data?
        var startedMs: Int64
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

    /// Takes a slot for a new export and returns its id; throws RESOURCE_EXHAUSTED when all are taken.
    public func reserve() throws -> String {
        let time = now()
        return try entries.withLock { entries in
            entries = entries.filter { time - $0.value.startedMs < timeToLiveMs }
            guard entries.count < limit else {
                throw RPCError(
                    .resourceExhausted,
                    "this device already holds \(limit) exports; finish one (FinishExport) or wait for it to expire")
            }
            let id = UUID().uuidString.lowercased()
            entries[id] = Entry(data: nil, startedMs: time)
            return id
        }
    }

    /// Stores the archive of a reserved export.
    public func fill(_ id: String, data: Data) {
        entries.withLock { entries in entries[id]?.data = data }
    }

    /// Releases an export; true when it was there.
    @discardableResult
    public func remove(_ id: String) -> Bool {
        entries.withLock { $0.removeValue(forKey: id) != nil }
    }

    /// The archive of export `id`; NOT_FOUND when unknown, expired or not built yet.
    public func data(_ id: String) throws -> Data {
        let time = now()
        return try entries.withLock { entries in
            guard let entry = entries[id] else {
                throw RPCError.notFound("no export '\(id)' on this device (finished, expired after 10 minutes, or never started)")
            }
            guard time - entry.startedMs < timeToLiveMs else {
                entries.removeValue(forKey: id)
                throw RPCError.notFound("export '\(id)' expired: it was not finished within \(timeToLiveMs / 1000) s")
            }
            guard let data = entry.data else { throw RPCError.notFound("export '\(id)' is still being built") }
            return data
        }
    }

    /// Drops expired exports (called periodically so memory is released without further calls).
    public func prune() {
        let time = now()
        entries.withLock { entries in entries = entries.filter { time - $0.value.startedMs < timeToLiveMs } }
    }

    /// Exports held now.
    public var count: Int { entries.withLock { $0.count } }
}
