import Foundation
import Logging
import Postgres
import RampartAPI
import RampartAudit
import RampartDatabase
import RampartProto
import RampartTesting
import Testing

/// P9: the audit log stores what it is given and finds it again by every filter.
@Suite("P9: audit log append and list (real PostgreSQL)")
struct AuditLogTests {
    static let aliceKey = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
    static let bobKey = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"

    /// Four records, each appended once the database's clock has passed the time of the one before, so their
    /// times differ: two of alice's (one refused), one of bob's, one refused download.
    static let records: [AuditRecord] = [
        AuditRecord(
            callerKey: aliceKey, callerName: "alice", callerRole: "admin", service: "link-signer",
            method: LinksAPI.exportBackupLinks.name, subject: "dev-1", outcome: .ok, message: "",
            details: ["links": "2", "selector": "device fw-1 latest"]),
        AuditRecord(
            callerKey: bobKey, callerName: "bob", callerRole: "operator", service: "backup",
            method: BackupAPI.startBackup.name, subject: "job-1", outcome: .ok),
        AuditRecord(
            callerKey: aliceKey, callerName: "alice", callerRole: "admin", service: "link-signer",
            method: LinksAPI.rotateKey.name, outcome: .permissionDenied, message: "role admin required"),
        AuditRecord(
            callerKey: "link:k1234567", callerName: "link", service: "storage", method: "GET /v1/backups/b-1/fw.tar",
            subject: "b-1", outcome: .notFound, message: "backup gone", details: ["remote": "127.0.0.1:4000"]),
    ]

    /// A wait that ran out where `#require` cannot record it (off the test's task).
    struct TimedOut: Error, CustomStringConvertible {
        var description: String
    }

    /// A database holding `records`, and their entries as listed.
    static func filled() async throws -> (AuditDatabase, [AuditLog.Entry]) {
        let database = try AuditDatabase.make()
        for record in records {
            await database.log.append(record)
            try await untilClockPassesNewest(database)
        }
        let entries = try await database.all()
        try #require(entries.count == records.count)
        return (database, entries)
    }

    /// Waits until the clock the database times entries by (`clock_timestamp()`) is past the millisecond of
    /// the newest entry as listed, so that the next entry is listed with a later time.
    static func untilClockPassesNewest(_ database: AuditDatabase) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while true {
            let times = try await database.pool.withConnection { connection -> (newest: Int64, now: Int64)? in
                guard
                    let row = try connection.query(
                        """
                        SELECT floor(extract(epoch FROM max(at)) * 1000)::bigint AS newest,
                               floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now
                        FROM audit.entries
                        """
                    ).first
                else { return nil }
                return (try row.decode("newest"), try row.decode("now"))
            }
            let (newest, now) = try #require(times)
            if now > newest { return }
            try #require(clock.now < deadline, "the database's clock stayed at \(now) ms, the newest entry's time")
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    func ids(_ database: AuditDatabase, _ filter: AuditFilter) async throws -> [UInt64] {
        try await database.log.list(filter).entries.map(\.id)
    }

    @Test("P9: every field comes back as appended, ids and times increase")
    func roundTrip() async throws {
        let (database, entries) = try await Self.filled()
        defer { Task { await database.pool.close() } }
        #expect(entries.map(\.record) == Self.records)
        #expect(zip(entries, entries.dropFirst()).allSatisfy { $0.id < $1.id && $0.timeUnixMs < $1.timeUnixMs })
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(entries.allSatisfy { abs($0.timeUnixMs - now) < 60_000 }, "times are the database's, in ms")
        let wire = entries[0].proto
        #expect(wire.callerKey == Self.aliceKey && wire.outcome == .ok && wire.details["links"] == "2")
        #expect(wire.id == entries[0].id && wire.timeUnixMs == entries[0].timeUnixMs)
    }

    @Test("P9: each filter narrows the list: caller by name, key or key prefix, method prefix, refused, time")
    func filters() async throws {
        let (database, entries) = try await Self.filled()
        defer { Task { await database.pool.close() } }
        let id = entries.map(\.id)
        #expect(try await ids(database, AuditFilter(caller: "alice")) == [id[0], id[2]])
        #expect(try await ids(database, AuditFilter(caller: Self.bobKey)) == [id[1]])
        #expect(try await ids(database, AuditFilter(caller: String(Self.aliceKey.prefix(8)))) == [id[0], id[2]])
        #expect(try await ids(database, AuditFilter(caller: String(Self.aliceKey.prefix(7)))) == [], "prefixes need 8+")
        #expect(try await ids(database, AuditFilter(caller: "link:k1234567")) == [id[3]])
        #expect(try await ids(database, AuditFilter(caller: "nobody")) == [])
        #expect(try await ids(database, AuditFilter(methodPrefix: "rampart.links.")) == [id[0], id[2]])
        #expect(try await ids(database, AuditFilter(methodPrefix: "GET /v1/backups/")) == [id[3]])
        #expect(try await ids(database, AuditFilter(refusedOnly: true)) == [id[2], id[3]])
        #expect(try await ids(database, AuditFilter(caller: "alice", refusedOnly: true)) == [id[2]])
        // since is inclusive, until exclusive, both in the ms the entries show.
        let time = entries.map(\.timeUnixMs)
        #expect(try await ids(database, AuditFilter(sinceUnixMs: time[2])) == [id[2], id[3]])
        #expect(try await ids(database, AuditFilter(untilUnixMs: time[1])) == [id[0]])
        #expect(try await ids(database, AuditFilter(sinceUnixMs: time[1], untilUnixMs: time[3])) == [id[1], id[2]])
        #expect(try await ids(database, AuditFilter(sinceUnixMs: time[3] + 1)) == [])
    }

    @Test("P9: pages follow after_id with limit; `more` is true exactly while entries remain")
    func paging() async throws {
        let (database, entries) = try await Self.filled()
        defer { Task { await database.pool.close() } }
        let first = try await database.log.list(AuditFilter(limit: 3))
        #expect(first.entries.map(\.id) == entries.prefix(3).map(\.id) && first.more)
        let second = try await database.log.list(AuditFilter(afterId: first.entries.last!.id, limit: 3))
        #expect(second.entries.map(\.id) == [entries[3].id] && !second.more)
        let exact = try await database.log.list(AuditFilter(limit: 4))
        #expect(exact.entries.count == 4 && !exact.more)
        let refused = try await database.log.list(AuditFilter(refusedOnly: true, limit: 1))
        #expect(refused.entries.map(\.id) == [entries[2].id] && refused.more)
        let rest = try await database.log.list(AuditFilter(refusedOnly: true, afterId: entries[2].id, limit: 1))
        #expect(rest.entries.map(\.id) == [entries[3].id] && !rest.more)
    }

    @Test(
        "P9: unusable filters are refused with a message",
        arguments: [
            (AuditFilter(sinceUnixMs: 2000, untilUnixMs: 1000), "must be before"),
            (AuditFilter(sinceUnixMs: 1000, untilUnixMs: 1000), "must be before"),
            (AuditFilter(sinceUnixMs: -1), "negative"),
            (AuditFilter(untilUnixMs: -5), "negative"),
            (AuditFilter(sinceUnixMs: Int64.max), "year 10000"),
            (AuditFilter(untilUnixMs: AuditFilter.maxUnixMs + 1), "year 10000"),
            (AuditFilter(limit: 1001), "between 1 and 1000"),
            (AuditFilter(limit: 0), "between 1 and 1000"),
            (AuditFilter(caller: "a\u{0}b"), "NUL"),
            (AuditFilter(methodPrefix: String(repeating: "m", count: 513)), "longer than"),
            (AuditFilter(afterId: UInt64.max), "out of range"),
        ])
    func invalidFilters(filter: AuditFilter, message: String) async throws {
        let database = try AuditDatabase.make()
        defer { Task { await database.pool.close() } }
        await #expect(throws: AuditFilterError.self) { try await database.log.list(filter) }
        do {
            try filter.validate()
            Issue.record("accepted \(filter)")
        } catch {
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test("P9: a List request's limit 0 means 100; over 1000 is refused")
    func requestLimits() throws {
        var request = Rampart_Audit_V1_ListAuditRequest()
        #expect(try AuditFilter(request).limit == 100)
        request.limit = 1000
        #expect(try AuditFilter(request).limit == 1000)
        request.limit = 1001
        #expect(throws: AuditFilterError.self) { try AuditFilter(request) }
    }

    @Test("P9: NUL characters and oversized fields are stored cleaned, never dropped")
    func storable() async throws {
        let database = try AuditDatabase.make()
        defer { Task { await database.pool.close() } }
        var details: [String: String] = ["a-nul": "x\u{0}y"]
        for index in 0..<40 { details[String(format: "k%02d", index)] = "v" }
        await database.log.append(
            AuditRecord(
                callerName: "eve\u{0}", service: "inventory", method: "m", subject: String(repeating: "s", count: 5000),
                outcome: .invalidArgument, details: details))
        let entry = try #require(try await database.all().first)
        #expect(entry.record.callerName == "eve\u{FFFD}")
        #expect(entry.record.subject.count == AuditRecord.maxFieldLength && entry.record.subject.hasSuffix("…"))
        #expect(entry.record.details.count == AuditRecord.maxDetails)
        #expect(entry.record.details["details-dropped"] == "\(details.count - AuditRecord.maxDetails + 1)")
        #expect(entry.record.details["a-nul"] == "x\u{FFFD}y" && entry.record.details["k29"] == "v")
        #expect(entry.record.details["k39"] == nil, "the first keys are kept")
        #expect(entry.record.outcome == .invalidArgument)
        #expect(entry.record.storable == entry.record, "cleaning is idempotent")
    }

    @Test("P9: append never throws; when the database is unreachable the record is logged in full, after one retry")
    func appendFailureIsLogged() async throws {
        let logs = LogRecord()
        let logger = Logger(label: "audit-tests") { _ in RecordingLogHandler(record: logs) }
        let pool = PostgresPool(
            connectionString: "host=/nonexistent-rampart port=1 dbname=none connect_timeout=1", size: 1, logger: logger)
        defer { Task { await pool.close() } }
        let log = AuditLog(pool: pool, logger: logger, retryDelay: .milliseconds(10))
        await log.append(Self.records[2])
        let errors = logs.all.filter { $0.level == .error }
        #expect(errors.count == 2, "one failure, one retry: \(errors.map(\.message))")
        #expect(errors.last?.message.contains("lost") == true)
        for entry in errors {
            #expect(entry.metadata["audit.caller-key"] == Self.aliceKey)
            #expect(entry.metadata["audit.caller-name"] == "alice")
            #expect(entry.metadata["audit.method"] == LinksAPI.rotateKey.name)
            #expect(entry.metadata["audit.outcome"] == "\(Rampart_Bus_V1_StatusCode.permissionDenied)")
            #expect(entry.metadata["audit.message"] == "role admin required")
            #expect(entry.metadata["error"]?.isEmpty == false)
        }
    }

    @Test("P9: a record appended by a cancelled task (a shutdown) is still written, after waiting its turn")
    func cancelledCaller() async throws {
        let database = try AuditDatabase.make(poolSize: 1)
        defer { Task { await database.pool.close() } }
        // The only connection is busy until the append waits for it: a cancelled wait would give up.
        let pool = database.pool
        let busy = Task {
            try await pool.withConnection { _ in
                let deadline = Date().addingTimeInterval(10)
                while pool.usage.waiting == 0 {
                    // Thrown, not `#require`: this runs on the connection's thread, outside the test's task.
                    guard Date() < deadline else { throw TimedOut(description: "the append never waited for the connection") }
                    Thread.sleep(forTimeInterval: 0.001)
                }
            }
        }
        while database.pool.usage.taken == 0 { try await Task.sleep(for: .milliseconds(1)) }
        let log = database.log
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await log.append(Self.records[1])
        }
        await task.value
        try await busy.value
        #expect(try await database.all().map(\.record) == [Self.records[1]])
    }
}
