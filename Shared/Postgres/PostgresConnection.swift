import CLibPQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One libpq connection. Not thread-safe: use it from one thread at a time (`PostgresPool` does this for you).
public final class PostgresConnection {
    private var handle: OpaquePointer?
    /// Statements prepared in this session, by text and parameter types: their names. Emptied when the
    /// session is new (`reset()`).
    private var prepared: [PreparedKey: String] = [:]
    /// Statements prepared in this session so far (names are never reused within it).
    private var preparedCount = 0
    /// At most this many statements are prepared per session; others run unprepared.
    static let maxPrepared = 512

    /// Connects (PQconnectdbParams); throws `.connection` with libpq's message on failure.
    ///
    /// Unless the string says otherwise, the session uses UTF-8, DateStyle ISO and a 10-second connect timeout.
    public init(connectionString: String) throws {
        // Earlier keywords are defaults: the expanded connection string (dbname) overrides them.
        var pairs: [(String, String)] = [
            ("connect_timeout", "10"),
            ("client_encoding", "UTF8"),
        ]
        if !connectionString.contains("options") {
            pairs.append(("options", "-c DateStyle=ISO -c bytea_output=hex"))
        }
        pairs.append(("dbname", connectionString))
        let keywords = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let connection = (keywords.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { keywordPointers in
            (values.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { valuePointers in
                PQconnectdbParams(keywordPointers.baseAddress, valuePointers.baseAddress, 1)
            }
        }
        guard let connection else {
            throw PostgresError(kind: .connection, message: "out of memory while connecting")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.errorMessage(of: connection)
            PQfinish(connection)
            throw PostgresError(kind: .connection, message: message)
        }
        // Server notices (e.g. "relation already exists, skipping") would go to stderr: ignore them.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        handle = connection
        startSession()
    }

    /// Session settings: prepared statements use PostgreSQL's own choice between a plan made for each
    /// execution's values and one generic plan (`plan_cache_mode = auto`, set in case the server's
    /// configuration says otherwise): after five executions the generic plan is kept only when its
    /// estimated cost is no worse than that of the plans made for the values, so a lookup by key stops
    /// being planned again and again, while filters such as `(x = '' OR column = x)`, whose generic plan
    /// cannot use an index, keep their plans per value (docs/decisions.md). (A server before
    /// PostgreSQL 12 has no setting and behaves as `auto`.)
    private func startSession() {
        prepared = [:]
        preparedCount = 0
        guard let handle else { return }
        PQclear(PQexec(handle, "SET plan_cache_mode TO auto"))
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// True while libpq considers the connection usable (PQstatus == CONNECTION_OK).
    public var isHealthy: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// `isHealthy`, and the server has sent nothing since the connection went idle — checked without a
    /// round trip, by polling the socket. An idle session gets nothing unasked (Rampart uses no LISTEN);
    /// a server that restarted or ended the session sent its goodbye and closed the socket, which libpq
    /// would notice only when the next statement fails. Checked when a pooled connection is taken, so
    /// the first statement after a restart runs on a new connection instead of failing. (A rare
    /// unasked message, e.g. a parameter change after a configuration reload, costs a reconnect.)
    public var isAliveAfterIdle: Bool {
        guard let handle, PQstatus(handle) == CONNECTION_OK, !isInTransaction else { return isHealthy }
        let socket = PQsocket(handle)
        guard socket >= 0 else { return false }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 0
    }

    /// True when a transaction block is open (or failed) on this connection.
    public var isInTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE
    }

    /// Reconnects with the same parameters (PQreset); check `isHealthy` afterwards.
    public func reset() {
        guard let handle else { return }
        PQreset(handle)
        startSession()
    }

    /// Closes the connection now (PQfinish); later calls fail with `.connection`.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Runs one statement (PQexecParams) and returns its rows as text values.
    public func query(_ sql: SQL) throws -> PostgresRows {
        let handle = try liveHandle()
        let bound = try Bound(sql)
        let name = try preparedName(sql.text, types: bound.types, on: handle)
        let result = bound.withParameters { pointers in
            if let name {
                PQexecPrepared(handle, name, bound.count, pointers, bound.lengths, bound.formats, 0)
            } else {
                PQexecParams(handle, sql.text, bound.count, bound.types, pointers, bound.lengths, bound.formats, 0)
            }
        }
        defer { PQclear(result) }
        do {
            return try rows(of: result)
        } catch let error as PostgresError where name != nil && error.sqlState == "0A000" {
            forgetPrepared(sql.text, types: bound.types, name: name, on: handle)
            throw error
        }
    }

    /// Runs `statements` in one round trip to the server (libpq pipeline mode): they are sent together,
    /// the server runs them one after the other, in order (each sees what the ones before it did), and
    /// their rows come back in order. For a handful of small statements whose texts do not depend on
    /// each other's results, such as the reads or the writes of one transaction's step.
    ///
    /// When a statement fails, the ones after it are not run and its error is thrown. Inside a
    /// transaction (`transaction(_:)`) that aborts the transaction, as the failing statement alone
    /// would have. Outside one, the pipeline ends at a single sync point, so the server runs all of
    /// its statements in one implicit transaction: a failure leaves nothing of the pipeline behind.
    public func pipeline(_ statements: [SQL]) throws -> [PostgresRows] {
        guard !statements.isEmpty else { return [] }
        let handle = try liveHandle()
        let bound = try statements.map(Bound.init)
        // Preparing is a round trip of its own, once per statement text and session: done before the
        // pipeline, so the pipeline itself only executes.
        let names = try zip(statements, bound).map { sql, bound in
            try preparedName(sql.text, types: bound.types, on: handle)
        }
        guard PQenterPipelineMode(handle) == 1 else {
            throw PostgresError(kind: .query, message: "cannot enter pipeline mode: " + Self.errorMessage(of: handle))
        }
        var sent = 0
        for (index, sql) in statements.enumerated() {
            let statement = bound[index]
            let accepted = statement.withParameters { pointers in
                if let name = names[index] {
                    PQsendQueryPrepared(handle, name, statement.count, pointers, statement.lengths, statement.formats, 0)
                } else {
                    PQsendQueryParams(
                        handle, sql.text, statement.count, statement.types, pointers, statement.lengths, statement.formats, 0)
                }
            }
            guard accepted == 1 else { break }
            sent += 1
        }
        let synced = PQpipelineSync(handle) == 1
        // Every result is read, even after a failure, so the connection leaves pipeline mode idle.
        var results: [PostgresRows] = []
        var failure: PostgresError?
        for index in 0..<sent {
            while let result = PQgetResult(handle) {
                defer { PQclear(result) }
                guard failure == nil else { continue }  // PGRES_PIPELINE_ABORTED after the failure
                do {
                    results.append(try rows(of: result))
                } catch let error as PostgresError {
                    if names[index] != nil && error.sqlState == "0A000" {
                        forgetPrepared(statements[index].text, types: bound[index].types, name: nil, on: handle)
                    }
                    failure = error
                }
            }
        }
        if synced {
            // The sync point: PGRES_PIPELINE_SYNC (a connection lost meanwhile gives NULL).
            if let result = PQgetResult(handle) { PQclear(result) }
        }
        let exited = PQexitPipelineMode(handle) == 1
        if let failure { throw failure }
        guard sent == statements.count, synced, exited, results.count == statements.count else {
            throw PostgresError(kind: .connection, message: Self.errorMessage(of: handle))
        }
        return results
    }

    /// Forgets a prepared statement whose table changed under it ("cached plan must not change result
    /// type", SQLSTATE 0A000, after a migration by a newer process): it is prepared afresh next time.
    private func forgetPrepared(_ text: String, types: [Oid], name: String?, on handle: OpaquePointer) {
        prepared[PreparedKey(text: text, types: types)] = nil
        if !isInTransaction, let name { PQclear(PQexec(handle, "DEALLOCATE \(name)")) }
    }

    /// A statement's parameters as libpq takes them.
    private struct Bound {
        /// Values: text NUL-terminated, binary with their length.
        var storage: [[UInt8]?]
        var lengths: [Int32]
        var formats: [Int32]
        /// Binary parameters are bytea (OID 17), so they never get mistaken for text; the server infers the rest.
        var types: [Oid]
        var count: Int32 { Int32(storage.count) }

        init(_ sql: SQL) throws {
            for (position, bind) in sql.binds.enumerated() where !bind.isBinary && bind.value?.contains(0) == true {
                // As the server would answer such text: 22021 (character_not_in_repertoire), a data exception.
                throw PostgresError(
                    kind: .query, sqlState: "22021", message: "parameter $\(position + 1) contains a NUL character")
            }
            storage = sql.binds.map { bind in
                guard let value = bind.value else { return nil }
                return bind.isBinary ? value : value + [0]
            }
            lengths = sql.binds.map { Int32($0.value?.count ?? 0) }
            formats = sql.binds.map { Int32($0.isBinary ? 1 : 0) }
            types = sql.binds.map { $0.isBinary ? Oid(17) : Oid(0) }
        }

        /// `body` with a pointer to each value (nil for NULL), valid during the call.
        func withParameters<R>(_ body: ([UnsafePointer<CChar>?]) -> R) -> R {
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(storage.count)
            func recurse(_ index: Int) -> R {
                guard index < storage.count else { return body(pointers) }
                guard let value = storage[index] else {
                    pointers.append(nil)
                    return recurse(index + 1)
                }
                return value.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { chars in
                        pointers.append(chars.baseAddress ?? UnsafePointer(bitPattern: 1))
                        return recurse(index + 1)
                    }
                }
            }
            return recurse(0)
        }
    }

    /// The name of `text` prepared in this session (preparing it now when needed), or nil to run it
    /// unprepared (too many prepared already, or an aborted transaction, where the statement then
    /// fails as it would have). A statement the server refuses to prepare throws its error, as running
    /// it would have.
    private func preparedName(_ text: String, types: [Oid], on handle: OpaquePointer) throws -> String? {
        let key = PreparedKey(text: text, types: types)
        if let name = prepared[key] { return name }
        guard prepared.count < Self.maxPrepared, PQtransactionStatus(handle) != PQTRANS_INERROR else { return nil }
        preparedCount += 1
        let name = "rampart_\(preparedCount)"
        let result = PQprepare(handle, name, text, Int32(types.count), types)
        defer { PQclear(result) }
        _ = try rows(of: result)
        prepared[key] = name
        return name
    }

    /// Runs one statement and returns the number of rows it affected (PQcmdTuples).
    @discardableResult
    public func execute(_ sql: SQL) throws -> Int {
        try query(sql).affectedRows
    }

    /// Runs several statements in one string (PQexec), for migrations only: nothing is bound.
    public func executeScript(unsafeRawSQL: String) throws {
        let handle = try liveHandle()
        let result = PQexec(handle, unsafeRawSQL)
        defer { PQclear(result) }
        _ = try rows(of: result)
    }

    /// Runs `body` between BEGIN and COMMIT; rolls back and rethrows when it throws.
    public func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try execute("BEGIN")
        let value: T
        do {
            value = try body(self)
        } catch {
            if isHealthy { _ = try? execute("ROLLBACK") }
            throw error
        }
        do {
            try execute("COMMIT")
        } catch {
            if isHealthy && isInTransaction { _ = try? execute("ROLLBACK") }
            throw error
        }
        return value
    }

    // MARK: - Internals

    private func liveHandle() throws -> OpaquePointer {
        guard let handle else { throw PostgresError(kind: .connection, message: "the connection is closed") }
        return handle
    }

    private func rows(of result: OpaquePointer?) throws -> PostgresRows {
        guard let result else {
            throw PostgresError(kind: .connection, message: Self.errorMessage(of: handle))
        }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_SINGLE_TUPLE:
            let columnCount = PQnfields(result)
            let rowCount = PQntuples(result)
            let columns = (0..<columnCount).map { String(cString: PQfname(result, $0)) }
            var values: [[String?]] = []
            values.reserveCapacity(Int(rowCount))
            for row in 0..<rowCount {
                values.append(
                    (0..<columnCount).map { column in
                        PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
                    })
            }
            return PostgresRows(columns: columns, values: values, affectedRows: Self.affectedRows(result))
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(columns: [], values: [], affectedRows: Self.affectedRows(result))
        default:
            throw error(from: result)
        }
    }

    private static func affectedRows(_ result: OpaquePointer) -> Int {
        guard let text = PQcmdTuples(result) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    private func error(from result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let sqlState = field("C")
        let lost = !isHealthy
        let message = field("M") ?? Self.trimmed(PQresultErrorMessage(result)) ?? Self.errorMessage(of: handle)
        return PostgresError(
            kind: lost ? .connection : .query,
            sqlState: sqlState,
            message: message.isEmpty ? "the server closed the connection" : message,
            detail: field("D"),
            constraint: field("n"))
    }

    private static func trimmed(_ text: UnsafePointer<CChar>?) -> String? {
        guard let text else { return nil }
        // libpq messages may span lines ("…\n\tThis probably means…"): make them one line.
        let message = String(cString: text).split(whereSeparator: \.isNewline)
            .map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }.joined(separator: " ")
        return message.isEmpty ? nil : message
    }

    private static func errorMessage(of connection: OpaquePointer?) -> String {
        guard let connection else { return "the connection is closed" }
        return trimmed(PQerrorMessage(connection)) ?? "unknown libpq error"
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let last = scalars.last, last.isWhitespace { scalars = scalars.dropLast() }
        while let first = scalars.first, first.isWhitespace { scalars = scalars.dropFirst() }
        return String(scalars)
    }
}

/// A statement as prepared: its text and the types of its parameters.
private struct PreparedKey: Hashable {
    var text: String
    var types: [Oid]
}

/// A connection belongs to one thread at a time: share a `PostgresPool` instead.
@available(*, unavailable)
extension PostgresConnection: Sendable {}
