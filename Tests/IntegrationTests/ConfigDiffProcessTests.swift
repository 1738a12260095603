import Foundation
import RampartAPI
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// Configuration diffs over real processes (docs/rules.md P17, docs/config-diff.md).
@Suite("P17: what changed — fingerprints, unchanged backups, diffs and their events over real processes", .serialized)
struct ConfigDiffProcessTests {
    static func events(_ system: BackupSystem, _ topic: String) async throws -> [Rampart_Bus_V1_Event] {
        let result = try await system.system.rampart("events", "tail", "--since", "0", "--topic", topic, "--count", "100", "--output", "json")
        #expect(result.exitCode == 0, "\(result)")
        return try result.stdout.split(separator: "\n").map { try OperatorJSON.decode(Rampart_Bus_V1_Event.self, from: String($0)) }
    }

    /// Backs up `targets` and returns the job's backups by owner name.
    static func backUp(_ system: BackupSystem, _ targets: String...) async throws -> [String: Rampart_Backup_V1_Backup] {
        let result = try await system.system.rampart(["backup", "start"] + targets + ["--wait", "--output", "json", "--timeout", "60"])
        let job = try OperatorJSON.decode(Rampart_Backup_V1_Job.self, from: result.stdout)
        #expect(result.exitCode == 0 && job.state == .succeeded, "\(result)")
        return Dictionary(uniqueKeysWithValues: try await system.backups(job: job.id).map { ($0.ownerName, $0) })
    }

    @Test(
        "P17: an unchanged device and cluster are marked unchanged and share the stored file; after a change the backup names the changed files, backup.config.changed says which (never contents), and backups diff shows the lines, secrets as 'changed (secret)', to operators only, audited",
        .timeLimit(.minutes(5)))
    func changedAndUnchanged() async throws {
        var spec = FleetSpec()
        spec.device("cd-1")
        spec.cluster("cdc")
        try await withBackupSystem(spec) { system in
            let cli = system.system
            let first = try await Self.backUp(system, "cd-1", "cluster:cdc")
            let (device1, bundle1) = (try #require(first["cd-1"]), try #require(first["cdc"]))
            #expect(device1.previousBackupID.isEmpty && device1.unchangedFrom.isEmpty && device1.changedFiles.isEmpty)

            // Nothing changed: both marked unchanged, sharing the first backups' files; nothing new stored.
            let second = try await Self.backUp(system, "cd-1", "cluster:cdc")
            let (device2, bundle2) = (try #require(second["cd-1"]), try #require(second["cdc"]))
            #expect(device2.previousBackupID == device1.id && device2.unchangedFrom == device1.id, "\(device2)")
            #expect(device2.objectID == device1.objectID && device2.fileName == device1.fileName && device2.changedFiles.isEmpty)
            #expect(bundle2.unchangedFrom == bundle1.id && bundle2.objectID == bundle1.objectID && bundle2.members == bundle1.members)
            let client = cli.client()
            defer { client.close() }
            let objects: Rampart_Storage_V1_ListObjectsResponse = try await client.call(
                StorageAPI.listObjects, Rampart_Storage_V1_ListObjectsRequest(), timeout: .seconds(10))
            #expect(Set(objects.objects.map(\.objectID)) == [device1.objectID, bundle1.objectID], "one stored file each")
            let list = try await cli.rampart("backups", "list", "--owner", "cd-1")
            #expect(list.stdout.contains("unchanged"), "\(list)")
            let same = try await cli.rampart("backups", "diff", "cd-1")
            #expect(same.exitCode == 0 && same.stdout.contains("no configuration change"), "\(same)")

            // An operator changes cd-1 (location, an access rule, a key) and cdc-n2's location.
            try await system.changeConfig(
                "cd-1", "--location", "dc-9 rack 4", "--add-access-rule", "allow-backup-admin", "--rotate-key", "https-server")
            try await system.changeConfig("cdc-n2", "--location", "dc-2 row 7")
            let third = try await Self.backUp(system, "cd-1", "cluster:cdc")
            let (device3, bundle3) = (try #require(third["cd-1"]), try #require(third["cdc"]))
            #expect(device3.previousBackupID == device2.id && device3.unchangedFrom.isEmpty && device3.objectID != device1.objectID)
            #expect(device3.changedFiles == ["pki/https-server.crt", "pki/https-server.key", "policies/access-policy.json", "running-config"])
            #expect(bundle3.previousBackupID == bundle2.id && bundle3.changedFiles == ["cdc-n2/running-config"], "\(bundle3)")

            // One event per device whose configuration changed, naming files only.
            let changes = try await Self.events(system, "backup.config.changed")
            #expect(changes.map { $0.attributes["device"] ?? "" }.sorted() == ["cd-1", "cdc-n2"], "\(changes)")
            let deviceChange = try #require(changes.first { $0.attributes["device"] == "cd-1" })
            #expect(deviceChange.attributes["backup_id"] == device3.id && deviceChange.attributes["previous_backup_id"] == device2.id)
            #expect(deviceChange.attributes["changed_files"]?.split(separator: "\n").count == 4 && deviceChange.attributes["count"] == "4")
            #expect(!changes.contains { $0.attributes.values.contains { $0.contains("dc-9") || $0.contains("PRIVATE") } })

            // The diff: lines for people, the key as a secret, volatile lines normalised away.
            let diff = try await cli.rampart("backups", "diff", "cd-1")
            #expect(diff.exitCode == 0, "\(diff)")
            #expect(diff.stdout.contains("4 files changed"), "\(diff.stdout)")
            #expect(diff.stdout.contains("+snmp-server location dc-9 rack 4") && diff.stdout.contains("\"allow-backup-admin\""))
            #expect(diff.stdout.contains("pki/https-server.key") && diff.stdout.contains("changed (secret)"))
            #expect(!diff.stdout.contains("PRIVATE KEY") && !diff.stdout.contains("Written by") && !diff.stdout.contains("Cryptochecksum"))
            // By ids, as JSON: the rules that normalised the banners are counted.
            let json = try await cli.rampart("backups", "diff", device1.id, device3.id, "--output", "json")
            let structured = try OperatorJSON.decode(Rampart_Storage_V1_DiffObjectsResponse.self, from: json.stdout)
            #expect(structured.files.map(\.path) == device3.changedFiles, "\(json)")
            #expect(structured.files.first { $0.path == "pki/https-server.key" }.map { $0.secret && $0.unified.isEmpty } == true)
            #expect(structured.rules.first { $0.name == "saved-banner" }?.lines == 4, "\(structured.rules)")
            // A node by its name: its own file in the last two bundles.
            let node = try await cli.rampart("backups", "diff", "cdc-n2")
            #expect(node.exitCode == 0 && node.stdout.contains("+snmp-server location dc-2 row 7"), "\(node)")
            #expect(!node.stdout.contains("cdc-n1"), "\(node)")
            // The whole cluster, node by node: n1's file differs only in volatile lines.
            let cluster = try await cli.rampart("backups", "diff", "cdc", "--stat")
            #expect(cluster.exitCode == 0 && cluster.stdout.contains("cdc-n1") && cluster.stdout.contains("no configuration change"), "\(cluster)")

            // A viewer may not read configuration; the audit log names who asked.
            let viewer = try await cli.rampart(as: "viewer", ["backups", "diff", "cd-1"])
            #expect(viewer.exitCode == 4 && viewer.stderr.contains("PERMISSION_DENIED"), "\(viewer)")
            let audit = try await cli.rampart("audit", "--method", StorageAPI.diffObjects.name, "--output", "json")
            let entries = try OperatorJSON.decode(Rampart_Audit_V1_ListAuditResponse.self, from: audit.stdout).entries
            #expect(entries.contains { $0.callerName == "admin" && $0.outcome == .ok && $0.subject == device3.objectID }, "\(entries)")
            #expect(entries.contains { $0.callerName == "viewer" && $0.outcome == .permissionDenied }, "\(entries)")

            // Bad input: a typo, a lone backup, a bundle against a device file.
            let typo = try await cli.rampart("backups", "diff", "cd-l")
            #expect(typo.exitCode == 3, "\(typo)")
            let mixed = try await cli.rampart("backups", "diff", device3.id, bundle3.id)
            #expect(mixed.exitCode == 6 && mixed.stderr.contains("cluster bundle"), "\(mixed)")
        }
    }
}
