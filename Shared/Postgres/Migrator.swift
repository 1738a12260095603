import Logging

/// One schema migration: a version (ascending, unique per schema), a name for people, and its SQL script.
public struct Migration: Sendable, Hashable {
    /// The version, applied in ascending order.
    public var version: Int
    /// A short name for logs and the bookkeeping table.
    public var name: String
    /// The SQL script; it runs inside a transaction, so it must not contain BEGIN/COMMIT.
    public var sql: String

    /// Creates a migration.
    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// A stable 64-bit FNV-1a of the SQL text, as 16 hex digits.
    public var checksum: String { fnv1aHex(sql) }
}

/// Why migrating refused to run.
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, for people.
    public var message: String
    /// The message.
    public var description: String { "MigrationError: \(message)" }
}

/// Applies schema migrations, safely when several instances start at once.
public enum Migrator {
    /// Applies missing migrations of `schema` in version order, each in its own transaction, under a
    /// session advisory lock derived from the schema name, so N instances can start at once.
    ///
    /// Bookkeeping lives in `public.rampart_schema_migrations`. Throws `MigrationError` when an applied
    /// migration's checksum differs from the code's or the versions are not unique and positive.
    public static func migrate(
        schema: String, migrations: [Migration], connection: PostgresConnection, logger: Logger
    ) throws {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.version == next.version {
            throw MigrationError(message: "\(schema): migration version \(next.version) appears twice")
        }
        if let first = sorted.first, first.version <= 0 {
            throw MigrationError(message: "\(schema): migration versions must be positive (found \(first.version))")
        }

        // CREATE TABLE IF NOT EXISTS races with itself, so serialise it under a fixed transaction lock.
        try connection.transaction { connection in
            try connection.execute("SELECT pg_advisory_xact_lock(\(lockKey("rampart_schema_migrations")))")
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS public.rampart_schema_migrations (
                    schema text NOT NULL,
                    version int NOT NULL,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (schema, version)
                )
                """)
        }

        let key = lockKey("rampart_schema_migrations:" + schema)
        try connection.execute("SELECT pg_advisory_lock(\(key))")
        defer {
            if connection.isHealthy { _ = try? connection.execute("SELECT pg_advisory_unlock(\(key))") }
        }

        var applied: [Int: (name: String, checksum: String)] = [:]
        for row in try connection.query(
            "SELECT version, name, checksum FROM public.rampart_schema_migrations WHERE schema = \(schema)")
        {
            applied[try row.decode("version")] = (try row.decode("name"), try row.decode("checksum"))
        }
        for migration in sorted {
            guard let record = applied[migration.version] else { continue }
            guard record.checksum == migration.checksum else {
                throw MigrationError(
                    message: "\(schema) migration \(migration.version) (\(record.name)) was applied with checksum "
                        + "\(record.checksum) but the code's is \(migration.checksum): applied migrations must never "
                        + "change; add a new one")
            }
        }
        let known = Set(sorted.map(\.version))
        for version in applied.keys.sorted() where !known.contains(version) {
            logger.warning(
                "the database has a migration this code does not know (a newer release applied it?)",
                metadata: ["schema": "\(schema)", "version": "\(version)"])
        }

        for migration in sorted where applied[migration.version] == nil {
            logger.info(
                "applying migration",
                metadata: ["schema": "\(schema)", "version": "\(migration.version)", "name": "\(migration.name)"])
            try connection.transaction { connection in
                try connection.executeScript(unsafeRawSQL: migration.sql)
                try connection.execute(
                    """
                    INSERT INTO public.rampart_schema_migrations (schema, version, name, checksum)
                    VALUES (\(schema), \(migration.version), \(migration.name), \(migration.checksum))
                    """)
            }
        }
    }

    /// A signed 64-bit advisory-lock key derived from a name.
    static func lockKey(_ name: String) -> Int64 {
        Int64(bitPattern: fnv1a(name))
    }
}

func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
}

func fnv1aHex(_ text: String) -> String {
    let digits = String(fnv1a(text), radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
