import Foundation
import Logging
import Postgres
import RampartAudit
import RampartTesting
import Synchronization

/// A fresh database on the test server with schema `audit` migrated, and a log over a pool of it.
struct AuditDatabase {
    let connectionString: String
    let pool: PostgresPool
    let log: AuditLog

    static func make(poolSize: Int = 2, logger: Logger = Logger(label: "audit-tests")) throws -> AuditDatabase {
        let connectionString = try TestDatabase.create()
        let connection = try PostgresConnection(connectionString: connectionString)
        try AuditLog.migrate(connection: connection, logger: logger)
        let pool = PostgresPool(connectionString: connectionString, size: poolSize, logger: logger)
        return AuditDatabase(connectionString: connectionString, pool: pool, log: AuditLog(pool: pool, logger: logger))
    }

    /// A connection of its own (for statements the log never runs).
    func connect() throws -> PostgresConnection {
        try PostgresConnection(connectionString: connectionString)
    }

    /// Every entry, oldest first.
    func all() async throws -> [AuditLog.Entry] {
        try await log.list(AuditFilter(limit: AuditFilter.maxLimit)).entries
    }
}

/// What a `RecordingLogHandler` saw; shared by every copy of the handler.
final class LogRecord: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    var all: [Entry] { entries.withLock { $0 } }

    func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }
}

/// A log handler that keeps what was logged, so tests can look at it.
struct RecordingLogHandler: LogHandler {
    let record: LogRecord
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged: [String: String] = [:]
        for (key, value) in metadata { merged[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { merged[key] = "\(value)" }
        record.append(LogRecord.Entry(level: event.level, message: "\(event.message)", metadata: merged))
    }
}

/// Runs blocking work on a thread of its own, so it never occupies Swift's cooperative pool.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}
