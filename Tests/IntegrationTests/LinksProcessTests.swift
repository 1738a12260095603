import Foundation
import RampartAPI
import RampartBus
import RampartLinks
import RampartJSON
import RampartProto
import RampartRPC
import RampartTesting
import Testing

/// Export Backup Links (L2) over real processes: link-signer signs, records and checks links for
/// backups the workers stored; the CLI exports them as a table, JSON and a CSV file.
@Suite("Links: link-signer exports, checks and rotates (L2)", .serialized)
struct LinksProcessTests {
    /// One standalone device and one HA pair, backed up once.
    static func fleet() -> FleetSpec {
        var spec = FleetSpec()
        spec.device("fw-links")
        spec.pair("hal")
        return spec
    }

    @Test("L2: an HA pair's export has a row per backup file, the CSV parses with Python's csv reader, the export is recorded")
    func exportCSV() async throws {
        try await withBackupSystem(Self.fleet(), links: true) { system in
            let (job, code) = try await system.backUp("hal")
            #expect(code == 0, "\(job)")
            let backups = try await system.backups(job: job.id)
            #expect(backups.count == 2)

            let csvPath = system.system.logDirectory + "/links.csv"
            let before = Int64(Date().timeIntervalSince1970 * 1000)
            let result = try await system.system.rampart(
                "links", "export", "--ha-pair", "hal", "--valid", "2h", "--csv", csvPath, "--output", "json")
            #expect(result.exitCode == 0, "\(result)")
            let response = try OperatorJSON.decode(Rampart_Links_V1_ExportBackupLinksResponse.self, from: result.stdout)
            #expect(response.links.count == 2)

            let rows = try await Self.readCSV(csvPath)
            #expect(rows.count == backups.count, "one row per backup file")
            for backup in backups {
                let row = try #require(rows.first { $0["file_name"] == backup.fileName }, "no row for \(backup.fileName)")
                #expect(row["device_name"] == backup.ownerName)
                #expect(row["device_id"] == backup.ownerID)
                #expect(row["role"] == backup.role.label)
                #expect(row["size"] == "\(backup.size)")
                #expect(row["sha256"] == backup.sha256)
                #expect(row["url"]?.hasPrefix(system.system.httpBaseURL + "/v1/backups/\(backup.id)/") == true)
                #expect(row["created_at"]?.hasSuffix("Z") == true && row["expires_at"]?.hasSuffix("Z") == true)
            }
            // Two hours from the moment link-signer signed, which lies between these two readings of the clock
            // (bounds, not a tolerance: a loaded CI machine once took 11.8 s to run the CLI).
            let after = Int64(Date().timeIntervalSince1970 * 1000)
            let expires = try #require(response.links.first?.expiresUnixMs)
            #expect((before + 7_200_000 - 1_000)...(after + 7_200_000 + 1_000) ~= expires, "--valid 2h")

            let exports = try await system.system.rampart("links", "exports", "--output", "json")
            #expect(exports.exitCode == 0, "\(exports)")
            let record = try #require(try OperatorJSON.decode(Rampart_Links_V1_ListExportsResponse.self, from: exports.stdout).exports.first)
            #expect(record.id == response.exportID)
            #expect(Set(record.backupIds) == Set(backups.map(\.id)))
            #expect(record.requestedBy == "admin", "the authenticated name of the CLI's key, not a self-declared one")
            #expect(record.selector == "ha-pair hal latest")
        }
    }

    @Test("L2: two exports of the same backup give different URLs, and both check out")
    func exportsDiffer() async throws {
        try await withBackupSystem(Self.fleet(), links: true) { system in
            let (job, code) = try await system.backUp("fw-links")
            #expect(code == 0, "\(job)")
            let first = try await export(system, "--device", "fw-links")
            let second = try await export(system, "--device", "fw-links")
            #expect(first.backupID == second.backupID)
            #expect(first.url != second.url)
            let client = system.system.client()
            defer { client.close() }
            for link in [first, second] {
                let verified = try await verify(client, link.url)
                #expect(verified.backupID == link.backupID && verified.sha256 == link.sha256)
            }
        }
    }

    @Test("L2: every single changed character of a link's path or query is refused")
    func tampered() async throws {
        try await withBackupSystem(Self.fleet(), links: true) { system in
            _ = try await system.backUp("fw-links")
            let link = try await export(system, "--device", "fw-links")
            let client = system.system.client()
            defer { client.close() }
            let (path, query) = try Self.split(link.url, base: system.system.httpBaseURL)
            let text = Array(path + "?" + query)
            var refused = 0
            for index in text.indices where text[index] != "?" {
                var changed = text
                changed[index] = Self.other(than: text[index])
                let parts = String(changed).split(separator: "?", maxSplits: 1).map(String.init)
                do {
                    _ = try await verify(client, path: parts[0], query: parts.count > 1 ? parts[1] : "")
                    Issue.record("a link changed at \(index) was accepted: \(String(changed))")
                } catch let error as RPCError {
                    #expect(error.code == .permissionDenied, "\(error)")
                    refused += 1
                }
            }
            #expect(refused == text.count - 1)
            // And the untouched link still works.
            _ = try await verify(client, path: path, query: query)
        }
    }

    @Test("L2: a link works until its expiry and is refused one second after it (injected clock)")
    func expiry() async throws {
        try await withBackupSystem(Self.fleet(), links: true) { system in
            _ = try await system.backUp("fw-links")
            let link = try await export(system, "--device", "fw-links", "--valid", "90m")
            let client = system.system.client()
            defer { client.close() }
            let now = Date().timeIntervalSince1970
            let expires = Double(link.expiresUnixMs) / 1000
            try system.setClockOffset(expires - now - 2)
            _ = try await verify(client, link.url)
            try system.setClockOffset(expires - now + 1)
            try await expectRefused("link expired") { _ = try await verify(client, link.url) }
        }
    }

    @Test("L2: after a rotation the old key's links work until their lifetime is over, then are refused; new links use the new key")
    func rotation() async throws {
        try await withBackupSystem(Self.fleet(), links: true) { system in
            _ = try await system.backUp("fw-links")
            // Valid 1 h, so its own expiry comes well before the end of its key's 6 h window.
            let old = try await export(system, "--device", "fw-links", "--valid", "1h")
            let rotated = try await system.system.rampart("links", "keys", "rotate", "--output", "json")
            #expect(rotated.exitCode == 0, "\(rotated)")
            let rotation = try OperatorJSON.decode(Rampart_Links_V1_RotateKeyResponse.self, from: rotated.stdout)
            #expect(rotation.retired.id == old.keyID && rotation.active.id != old.keyID)
            #expect(rotation.retired.verifiesUntilUnixMs == rotation.retired.retiredUnixMs + 6 * 3_600_000)

            let new = try await export(system, "--device", "fw-links")
            #expect(new.keyID == rotation.active.id)
            let client = system.system.client()
            defer { client.close() }
            _ = try await verify(client, old.url)
            _ = try await verify(client, new.url)

            let listed = try await system.system.rampart("links", "keys", "list", "--output", "json")
            let keys = try OperatorJSON.decode(Rampart_Links_V1_ListKeysResponse.self, from: listed.stdout).keys
            #expect(keys.map(\.id) == [rotation.active.id, old.keyID])
            #expect(keys.map(\.active) == [true, false])

            // Past the old link's lifetime: expired, though its key still verifies for a while.
            let now = Date().timeIntervalSince1970
            try system.setClockOffset(Double(old.expiresUnixMs) / 1000 - now + 1)
            try await expectRefused("link expired") { _ = try await verify(client, old.url) }
            // Past the retired key's window: the key itself is gone; the new key still verifies its links
            // until they expire.
            try system.setClockOffset(Double(rotation.retired.verifiesUntilUnixMs) / 1000 - now + 1)
            try await expectRefused("unknown key") { _ = try await verify(client, old.url) }
        }
    }

    @Test("L2: exports that name nothing, too much or an unknown target are refused with a clear message")
    func refusals() async throws {
        try await withBackupSystem(Self.fleet(), links: true) { system in
            let none = try await system.system.rampart("links", "export", "--device", "fw-links")
            #expect(none.exitCode == 3 && none.stderr.contains("has no backups"), "\(none)")
            let long = try await system.system.rampart("links", "export", "--device", "fw-links", "--valid", "7h")
            #expect(long.exitCode == 64 && long.stderr.contains("maximum is 6h"), "\(long)")
            let two = try await system.system.rampart("links", "export", "--device", "fw-links", "--cluster", "c")
            #expect(two.exitCode == 64, "\(two)")
            let unknownPair = try await system.system.rampart("links", "export", "--ha-pair", "nope")
            #expect(unknownPair.exitCode == 3, "\(unknownPair)")
            let badId = try await system.system.rampart("links", "export", "not-a-uuid")
            #expect(badId.exitCode == 6, "\(badId)")
        }
    }

    // MARK: helpers

    /// Expects `body` to fail with PERMISSION_DENIED and exactly `reason` (the text of the 403).
    func expectRefused(
        _ reason: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
    ) async throws {
        do {
            try await body()
            Issue.record("expected a refusal (\(reason)); the link was accepted", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.code == .permissionDenied && error.message == reason, "\(error)", sourceLocation: sourceLocation)
        }
    }

    func export(_ system: BackupSystem, _ arguments: String...) async throws -> Rampart_Links_V1_BackupLink {
        let result = try await system.system.rampart(["links", "export"] + arguments + ["--output", "json"])
        #expect(result.exitCode == 0, "\(result)")
        let response = try OperatorJSON.decode(Rampart_Links_V1_ExportBackupLinksResponse.self, from: result.stdout)
        return try #require(response.links.first)
    }

    func verify(_ client: BusClient, _ url: String) async throws -> Rampart_Links_V1_VerifyLinkResponse {
        let afterScheme = try #require(url.range(of: "://"))
        let pathStart = try #require(url[afterScheme.upperBound...].firstIndex(of: "/"))
        let (path, query) = try Self.split(url, base: String(url[..<pathStart]))
        return try await verify(client, path: path, query: query)
    }

    func verify(_ client: BusClient, path: String, query: String) async throws -> Rampart_Links_V1_VerifyLinkResponse {
        var request = Rampart_Links_V1_VerifyLinkRequest()
        request.method = "GET"
        request.path = path
        request.query = query
        return try await client.call(
            LinksAPI.verifyLink, request, timeout: .seconds(5))
    }

    static func split(_ url: String, base: String) throws -> (path: String, query: String) {
        #expect(url.hasPrefix(base))
        let rest = url.dropFirst(base.count)
        let parts = rest.split(separator: "?", maxSplits: 1).map(String.init)
        return (parts[0], parts.count > 1 ? parts[1] : "")
    }

    /// A character that differs from `character` but keeps the link's shape plausible.
    static func other(than character: Character) -> Character {
        switch character {
        case "a": "b"
        case "0": "1"
        case "/": "x"
        case "=": "x"
        case "&": "x"
        case "-": "_"
        case "_": "-"
        case ".": "x"
        default: character.isUppercase ? "a" : (character.isNumber ? "0" : "a")
        }
    }

    /// Rows of a CSV file as read by Python's standard `csv` module (a reader we did not write).
    static func readCSV(_ path: String) async throws -> [[String: String]] {
        let script = "import csv, json, sys; print(json.dumps(list(csv.DictReader(open(sys.argv[1], newline='')))))"
        let result = try await ChildProcess.run("/usr/bin/python3", ["-c", script, path])
        #expect(result.exitCode == 0, "\(result)")
        return try JSONDecoder().decode([[String: String]].self, from: Data(result.stdout.utf8))
    }
}
