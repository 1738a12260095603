import Foundation
import Logging
import Postgres
import RampartAudit
import RampartBus
import RampartProto
import RampartRPC
import RampartTesting
import ServiceLifecycle
import StorageHTTP
import Synchronization
import Testing

@testable import StorageService

/// A link verifier for tests, standing in for link-signer: links are registered by their raw path; the
/// `sig` query parameter decides: "good" (the registered link, or NOT_FOUND when none), "expired" and
/// anything else (PERMISSION_DENIED), "down" (UNAVAILABLE). Records every request it was asked.
final class TestLinkVerifier: LinkVerifier {
    private let links = Mutex<[String: Rampart_Links_V1_VerifyLinkResponse]>([:])
    private let requests = Mutex<[Rampart_Links_V1_VerifyLinkRequest]>([])

    /// Makes the raw `path` a valid link to `info` for backup `backupId`.
    func register(path: String, backupId: String, info: Rampart_Storage_V1_ObjectInfo, fileName: String? = nil) {
        var link = Rampart_Links_V1_VerifyLinkResponse()
        link.backupID = backupId
        link.objectID = info.objectID
        link.fileName = fileName ?? info.fileName
        link.size = info.size
        link.sha256 = info.objectID
        link.keyID = "k0a1b2c3"
        link.nonce = "nonce-\(backupId)"
        link.deviceID = "device-1"
        link.deviceName = "fw-1"
        links.withLock { $0[path] = link }
    }

    /// What it was asked, in order.
    var asked: [Rampart_Links_V1_VerifyLinkRequest] { requests.withLock { $0 } }

    func verify(_ request: Rampart_Links_V1_VerifyLinkRequest) async throws -> Rampart_Links_V1_VerifyLinkResponse {
        requests.withLock { $0.append(request) }
        let parameters = Dictionary(
            request.query.split(separator: "&").map { pair -> (String, String) in
                let parts = pair.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }, uniquingKeysWith: { first, _ in first })
        switch parameters["sig"] {
        case "good":
            guard let link = links.withLock({ $0[request.path] }) else { throw RPCError(.notFound, "backup is gone") }
            return link
        case "expired": throw RPCError(.permissionDenied, "link expired")
        case "down": throw RPCError(.unavailable, "link-signer is restarting")
        default: throw RPCError(.permissionDenied, "bad signature")
        }
    }
}

/// Runs a `StorageHTTPServer` over `storage` on a free port of 127.0.0.1 in a `ServiceGroup` while `body`
/// runs with the base URL ("http://127.0.0.1:PORT"), then shuts the group down gracefully.
func withDownloadServer(
    _ storage: StorageHarness, verifier: any LinkVerifier, audit: any AuditSink = RecordingAuditSink(),
    drainTimeout: Duration = .seconds(10),
    _ body: (_ base: String, _ group: ServiceGroup) async throws -> Void
) async throws {
    let logger = Logger(label: "storage-http-tests")
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let server = StorageHTTPServer(
        configuration: .init(host: "127.0.0.1", port: 0, drainTimeout: drainTimeout), storage: storage.service,
        verifier: verifier, audit: audit, logger: logger, onListening: { _, port in continuation.yield(port) })
    let group = ServiceGroup(configuration: .init(services: [server], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("the server never listened") }
        do {
            try await body("http://127.0.0.1:\(port)", group)
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

/// An audit sink that keeps what it was given, so tests can look at the records.
final class RecordingAuditSink: AuditSink {
    private let stored = Mutex<[AuditRecord]>([])

    /// Every record appended so far, in order.
    var records: [AuditRecord] { stored.withLock { $0 } }

    func append(_ record: AuditRecord) async { stored.withLock { $0.append(record) } }

    /// Waits (up to 10 s) until `count` records arrived: a download's record follows its last byte.
    func wait(for count: Int) async throws -> [AuditRecord] {
        for _ in 0..<1000 {
            let now = records
            if now.count >= count { return now }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("expected \(count) audit records, got \(records.count): \(records)")
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What `curl` got: status, headers of the last response (names lower-cased), body and exit code.
struct CurlResult {
    var exitCode: Int32
    var status: Int
    var headers: [String: String]
    var body: Data
    var stderr: String

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Runs the system `curl` on `url` with `arguments`; the body goes to `output` (a fresh file by default).
func curl(_ url: String, _ arguments: [String] = [], output: String? = nil) async throws -> CurlResult {
    let scratch = NSTemporaryDirectory() + "rampart-curl-\(UUID().uuidString.prefix(8))"
    let bodyPath = output ?? scratch + ".body"
    let headerPath = scratch + ".headers"
    defer {
        if output == nil { unlink(bodyPath) }
        unlink(headerPath)
    }
    let result = try await ChildProcess.run(
        "/usr/bin/curl", ["-s", "-S", "-D", headerPath, "-o", bodyPath, "-w", "%{http_code}"] + arguments + [url])
    let headerText = (try? String(contentsOfFile: headerPath, encoding: .utf8)) ?? ""
    var headers: [String: String] = [:]
    for line in headerText.components(separatedBy: "\r\n") {
        if line.hasPrefix("HTTP/") {
            headers = [:]
        } else if let colon = line.firstIndex(of: ":") {
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
    }
    return CurlResult(
        exitCode: result.exitCode, status: Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
        headers: headers, body: (try? Data(contentsOf: URL(fileURLWithPath: bodyPath))) ?? Data(),
        stderr: result.stderr)
}

extension StorageHarness {
    /// The attributes of every `storage.download` event in the outbox, oldest first.
    func downloadEvents() throws -> [[String: String]] {
        let connection = try PostgresConnection(connectionString: connectionString)
        return try connection.query(
            "SELECT attributes::text AS attributes FROM events.outbox WHERE topic = 'storage.download' ORDER BY id"
        ).map { row in
            let text: String = try row.decode("attributes")
            return try JSONDecoder().decode([String: String].self, from: Data(text.utf8))
        }
    }

    /// Waits up to `timeout` for `count` download events (they are written when the body ends).
    func waitForDownloadEvents(_ count: Int, timeout: Duration = .seconds(10)) async throws -> [[String: String]] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let events = try downloadEvents()
            if events.count >= count || clock.now >= deadline { return events }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
