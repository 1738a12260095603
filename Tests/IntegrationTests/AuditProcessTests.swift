import Foundation
import RampartAPI
import RampartAudit
import RampartBus
import RampartJSON
import RampartProto
import RampartRPC
import RampartTesting
import Testing

/// P9 over real processes: storage audits every signed-link download, the bus hosts the
/// `audit` service, and `rampart audit` reads the log.
@Suite("P9: the audit log over real processes (storage, bus, CLI)", .serialized)
struct AuditProcessTests {
    @Test("P9: a signed-link download and a tampered link both appear in `rampart audit` with outcome and backup")
    func downloadsAudited() async throws {
        var spec = FleetSpec()
        spec.device("fw-audit")
        try await withBackupSystem(spec, links: true) { system in
            let (job, code) = try await system.backUp("fw-audit")
            #expect(code == 0, "\(job)")
            let exported = try await system.system.rampart(
                "links", "export", "--device", "fw-audit", "--output", "json")
            #expect(exported.exitCode == 0, "\(exported)")
            let link = try #require(try OperatorJSON.decode(Rampart_Links_V1_ExportBackupLinksResponse.self, from: exported.stdout).links.first)
            let path = String(link.url.dropFirst(system.system.httpBaseURL.count).prefix { $0 != "?" })

            let file = system.system.logDirectory + "/downloaded.tar"
            let good = try await curl(link.url, to: file)
            #expect(good == "200")
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)).count == Int(link.size))
            // The same link with one character of its signature changed.
            var characters = Array(link.url)
            let index = characters.count - 5
            characters[index] = characters[index] == "A" ? "B" : "A"
            let tampered = String(characters)
            #expect(tampered.contains("&sig=") && tampered != link.url)
            #expect(try await curl(tampered, to: "/dev/null") == "403")

            // The download's record follows its last byte: wait until both are there.
            var entries: [Rampart_Audit_V1_AuditEntry] = []
            for _ in 0..<100 {
                entries = try await audit(system, "--method", "GET /v1/backups/")
                if entries.count >= 2 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(entries.count == 2, "\(entries)")
            let served = try #require(entries.first { $0.outcome == .ok }, "\(entries)")
            #expect(served.subject == link.backupID)
            #expect(served.method == "GET " + path)
            #expect(served.callerKey == "link:" + link.keyID && served.callerName == "link")
            #expect(served.service == "storage")
            #expect(served.details["bytes"] == "\(link.size)" && served.details["range"] == "full")
            #expect(served.details["remote"]?.hasPrefix("127.0.0.1:") == true)
            #expect(served.timeUnixMs > 0 && served.id > 0)
            let refused = try #require(entries.first { $0.outcome == .permissionDenied }, "\(entries)")
            #expect(refused.subject == link.backupID)
            #expect(refused.method == "GET " + path, "the signature stays out of the log")
            #expect(refused.details["http-status"] == "403" && refused.details["bytes"] == "0")

            // The operator's own audited calls, recorded by the services with the authenticated key: the
            // backup started and the links exported (P7, P9: who did what, from which key).
            let admin = try #require(try system.system.keys?.list().first { $0.name == "admin" })
            let everything = try await audit(system, "--since", "10m")
            let started = everything.filter { $0.method == BackupAPI.startBackup.name }
            #expect(started.count == 1 && started.first?.subject == job.id && started.first?.details["targets"] == "fw-audit", "\(everything)")
            let exports = everything.filter { $0.method == LinksAPI.exportBackupLinks.name }
            #expect(exports.count == 1, "\(everything)")
            for entry in started + exports {
                #expect(entry.callerName == "admin" && entry.callerRole == "admin" && entry.callerKey == admin.key)
                #expect(entry.outcome == .ok)
            }

            // Filters and paging through the CLI.
            // Refused: the download (storage) and the link check behind it (link-signer, by path only).
            let refusals = try await audit(system, "--refused")
            #expect(refusals.count == 2 && refusals.contains { $0.id == refused.id }, "\(everything)")
            let check = try #require(refusals.first { $0.service == "link-signer" })
            #expect(check.method == LinksAPI.verifyLink.name && check.callerName == "storage")
            #expect(check.details["path"] == path && !check.details.values.contains { $0.contains("sig=") })
            #expect(Set(try await audit(system, "--caller", "link:" + link.keyID).map(\.id)) == [served.id, refused.id])
            #expect(try await audit(system, "--caller", "nobody").isEmpty)
            #expect(Set(everything.map(\.id)).isSuperset(of: [served.id, refused.id]))
            #expect(try await audit(system, "--until", "10m").isEmpty)
            let paged = try await audit(system, "--limit", "1", "--all")
            #expect(paged.map(\.id) == everything.map(\.id))
            let firstPage = try await system.system.rampart("audit", "--limit", "1", "--output", "json")
            let page = try OperatorJSON.decode(Rampart_Audit_V1_ListAuditResponse.self, from: firstPage.stdout)
            #expect(page.entries.count == 1 && page.more, "\(firstPage)")

            // The table for people.
            let table = try await system.system.rampart("audit")
            #expect(table.exitCode == 0, "\(table)")
            #expect(table.stdout.contains("PERMISSION_DENIED") && table.stdout.contains(link.backupID), "\(table)")
            #expect(table.stdout.contains("link:" + link.keyID), "\(table)")
        }
    }

    @Test("P9: a bad filter is INVALID_ARGUMENT from the service and a usage error (64) in the CLI")
    func badFilters() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        try await system.waitUntilServing(AuditAPI.serviceName)
        let client = system.client()
        defer { client.close() }
        var request = Rampart_Audit_V1_ListAuditRequest()
        request.sinceUnixMs = 2000
        request.untilUnixMs = 1000
        await expectInvalid(client, request, "must be before")
        request = Rampart_Audit_V1_ListAuditRequest()
        request.limit = 5000
        await expectInvalid(client, request, "between 1 and 1000")
        request = Rampart_Audit_V1_ListAuditRequest()
        request.caller = "a\u{0}b"
        await expectInvalid(client, request, "NUL")

        let empty = try await system.rampart("audit", "--output", "json")
        #expect(empty.exitCode == 0, "\(empty)")
        #expect(try OperatorJSON.decode(Rampart_Audit_V1_ListAuditResponse.self, from: empty.stdout).entries.isEmpty)
        for arguments in [["--since", "2x"], ["--since", "1h", "--until", "2h"], ["--limit", "0"], ["--limit", "1001"]] {
            let result = try await system.rampart(["audit"] + arguments)
            #expect(result.exitCode == 64, "\(arguments): \(result)")
        }
    }

    // MARK: helpers

    func expectInvalid(
        _ client: BusClient, _ request: Rampart_Audit_V1_ListAuditRequest, _ message: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        do {
            let _: Rampart_Audit_V1_ListAuditResponse = try await client.call(
                AuditAPI.list, request, timeout: .seconds(5))
            Issue.record("accepted \(request)", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument && error.message.contains(message), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    /// `rampart audit ARGS --output json`: the entries.
    func audit(_ system: BackupSystem, _ arguments: String...) async throws -> [Rampart_Audit_V1_AuditEntry] {
        let result = try await system.system.rampart(["audit"] + arguments + ["--output", "json"])
        #expect(result.exitCode == 0, "\(result)")
        return try OperatorJSON.decode(Rampart_Audit_V1_ListAuditResponse.self, from: result.stdout).entries
    }

    /// Fetches `url` with the system curl into `path`; returns the HTTP status.
    func curl(_ url: String, to path: String) async throws -> String {
        let result = try await ChildProcess.run("/usr/bin/curl", ["-s", "-o", path, "-w", "%{http_code}", url])
        #expect(result.exitCode == 0, "\(result)")
        return result.stdout
    }
}
