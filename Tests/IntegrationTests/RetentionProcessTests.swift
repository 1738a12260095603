import Foundation
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// The retention policy over real processes: shown and set from the CLI, prune saying why (P16, P17).
@Suite("P16: retention shown and set from the CLI, prune --dry-run saying why, over real processes", .serialized)
struct RetentionProcessTests {
    @Test(
        "P16, P17: retention show gives the installation's policy; set is for administrators and every worker prunes by it; prune --dry-run lists each deletion with its reasons and deletes nothing; unchanged backups sharing a file keep it while one record names it",
        .timeLimit(.minutes(5)))
    func showSetPrune() async throws {
        var spec = FleetSpec()
        spec.device("rt-1")
        try await withBackupSystem(spec, workers: 2) { system in
            let cli = system.system
            var ids: [String] = []
            for _ in 0..<3 {
                let (job, code) = try await system.backUp("rt-1")
                #expect(code == 0, "\(job)")
                ids.append(try #require(try await system.backups(job: job.id).first).id)
            }
            let shown = try await cli.rampart("retention", "show", "--output", "json")
            let initial = try OperatorJSON.decode(Rampart_Backup_V1_RetentionPolicyResponse.self, from: shown.stdout)
            #expect(initial.policy.keepLast == 10 && initial.policy.keepMonthly == 6 && initial.setBy == "backup-worker (default)", "\(shown)")

            let refused = try await cli.rampart(as: "operator", ["retention", "set", "--keep-last", "1"])
            #expect(refused.exitCode == 4 && refused.stderr.contains("PERMISSION_DENIED"), "\(refused)")
            let typo = try await cli.rampart("retention", "set", "--keep-last", "0")
            #expect(typo.exitCode == 64, "\(typo)")
            let set = try await cli.rampart(
                "retention", "set", "--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0")
            #expect(set.exitCode == 0 && set.stdout.contains("1 newest") && set.stdout.contains("admin"), "\(set)")

            let dry = try await cli.rampart("backups", "prune", "--dry-run", "--owner", "rt-1", "--output", "json")
            let would = try OperatorJSON.decode(Rampart_Backup_V1_PruneBackupsResponse.self, from: dry.stdout)
            #expect(Set(would.deleted.map(\.id)) == Set(ids.prefix(2)) && would.policy.keepLast == 1, "\(dry)")
            #expect(would.reasons.map(\.backupID) == would.deleted.map(\.id))
            #expect(would.reasons.allSatisfy { $0.reasons == ["not among the last 1"] }, "\(would.reasons)")
            #expect(would.keptBackups.map(\.backupID) == [ids[2]] && would.keptBackups.first?.reasons == ["last 1 (1st newest)"])
            let table = try await cli.rampart("backups", "prune", "--dry-run", "--owner", "rt-1")
            #expect(table.stdout.contains("would delete 2 backups") && table.stdout.contains("not among the last 1"), "\(table)")
            let listed = try await cli.rampart("backups", "list", "--owner", "rt-1", "--output", "json")
            #expect(try OperatorJSON.decode(Rampart_Backup_V1_ListBackupsResponse.self, from: listed.stdout).backups.count == 3)

            // For real: the two older records go; the stored file the three shared stays for the newest.
            let pruned = try await cli.rampart("backups", "prune", "--owner", "rt-1", "--output", "json")
            #expect(try OperatorJSON.decode(Rampart_Backup_V1_PruneBackupsResponse.self, from: pruned.stdout).deleted.count == 2)
            let left = try OperatorJSON.decode(
                Rampart_Backup_V1_ListBackupsResponse.self,
                from: try await cli.rampart("backups", "list", "--owner", "rt-1", "--output", "json").stdout).backups
            #expect(left.map(\.id) == [ids[2]])
            let newest = try #require(left.first)
            #expect(!newest.unchangedFrom.isEmpty, "the third backup shared the first one's file")
            #expect(try await system.download(newest).count == Int(newest.size))
        }
    }
}
