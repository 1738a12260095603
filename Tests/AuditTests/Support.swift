import Foundation
import Logging
import Postgres
import RampartAudit
import RampartDatabase
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

