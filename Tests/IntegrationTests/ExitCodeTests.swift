import Foundation
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// The README's exit-code table is what the commands return (docs/rules.md P13).
@Suite("P13: the CLI's exit codes (real processes)", .serialized)
struct ExitCodeTests {
    /// The codes the README's "Exit codes:" sentence lists, in order.
    static func readmeCodes() throws -> [Int32] {
        let readme = try String(contentsOfFile: Examples.repository + "/README.md", encoding: .utf8)
        let start = try #require(readme.range(of: "Exit codes: "), "the README has an exit-code sentence")
        let end = try #require(readme.range(of: "A call never waits", range: start.upperBound..<readme.endIndex))
        let passage = readme[start.upperBound..<end.lowerBound]
        return passage.split(whereSeparator: { !$0.isNumber }).compactMap { Int32($0) }
    }

    @Test("P13: every exit code of the README's table is what a command returns in that case")
    func readmeTable() async throws {
        let documented = try Self.readmeCodes()
        #expect(documented == [0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 64, 1], "the table changed: \(documented)")

        var spec = FleetSpec()
        // 16 one-MiB chunks, 400 ms each for fw-slow: a cancel lands mid-export.
        spec.configSize = "16MiB"
        spec.device("fw-ok")
        spec.device("fw-bad", failExport: true)
        spec.device("fw-slow", slowExportMs: 400)
        spec.cluster("cl", failing: ["n3"])
        try await withBackupSystem(spec) { system in
            let client = system.system.client()
            defer { client.close() }
            var seen: [Int32: String] = [:]
            func expect(_ code: Int32, _ why: String, _ result: ChildProcess.Result) {
                #expect(result.exitCode == code, "\(code) (\(why)): \(result)")
                seen[code] = why
            }

            let (job, ok) = try await system.backUp("fw-ok")
            #expect(ok == 0, "\(job)")
            let backup = try #require(try await system.backups(job: job.id).first)
            expect(0, "ok", try await system.system.rampart("devices", "list"))

            let jobsBefore = try await system.system.rampart("jobs", "list", "--output", "json")
            expect(3, "not found: a target nobody registered", try await system.system.rampart("backup", "start", "nosuch"))
            let jobsAfter = try await system.system.rampart("jobs", "list", "--output", "json")
            #expect(jobsBefore.stdout == jobsAfter.stdout, "a typo is never a job")

            expect(4, "refused: a viewer may not start a backup", try await system.system.rampart(as: "viewer", ["backup", "start", "fw-ok"]))
            expect(
                5, "unavailable: no bus answers",
                try await system.system.rampart("devices", "list", "--bus", "tcp://127.0.0.1:\(FreePort.next())", "--timeout", "1"))
            expect(6, "invalid argument: not a job id", try await system.system.rampart("jobs", "show", "not-a-job"))
            expect(
                7, "a waited-for job partially succeeded (a data node failed)",
                try await system.system.rampart("backup", "start", "cluster:cl", "--wait", "--timeout", "120"))
            expect(8, "a waited-for job failed", try await system.system.rampart("backup", "start", "fw-bad", "--wait", "--timeout", "120"))

            let (slowJob, _) = try await InterruptionTests.startAndWaitForExport(system, client, "fw-slow")
            let cancelled = try await system.system.rampart("jobs", "cancel", slowJob)
            #expect(cancelled.exitCode == 0, "\(cancelled)")
            expect(9, "a waited-for job was cancelled", try await system.system.rampart("jobs", "show", slowJob, "--wait", "--timeout", "120"))

            expect(
                1, "anything else: the folder to write into does not exist",
                try await system.system.rampart("backups", "download", backup.id, "-o", system.system.logDirectory + "/absent/x.tar"))

            // fw-ok's only backup (made before the steps above, seconds ago) against an objective of one second (P16); fw-bad and fw-slow were never backed up
            // but registered just now: `never`, not stale.
            let objective = try await system.system.rampart("devices", "objective", "fw-ok", "1s")
            #expect(objective.exitCode == 0, "\(objective)")
            expect(12, "a device's last good backup is older than its objective", try await system.system.rampart("backups", "status"))

            try system.flipBit(of: backup)
            expect(10, "storage found damage", try await system.system.rampart("storage", "verify"))
            expect(
                11, "data loss: the downloaded bytes do not check out",
                try await system.system.rampart("backups", "download", backup.id, "-o", system.system.logDirectory + "/damaged.tar"))

            let typo = try await system.system.rampart("devcies", "list")
            expect(64, "bad usage: a misspelt command", typo)
            #expect(typo.stderr.contains("devices"), "a typo gets a suggestion: \(typo)")

            #expect(Set(seen.keys) == Set(documented), "every documented code was walked: \(seen.keys.sorted())")
        }
    }
}
