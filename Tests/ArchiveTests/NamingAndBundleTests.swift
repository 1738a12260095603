import Foundation
import RampartArchive
import Testing

@Suite("Archives: backup file names (B7, B8)")
struct BackupNamingTests {
    static let date = Date(timeIntervalSince1970: 1_738_324_805)  // 2025-01-31T12:00:05Z

    @Test(
        "B7, B8: device file names carry the role; parsing gives name and role back",
        arguments: [
            (BackupRole.standalone, "fw-edge-01_20250131T120005Z.tar"),
            (.haPrimary, "fw-edge-01_primary_20250131T120005Z.tar"),
            (.haSecondary, "fw-edge-01_secondary_20250131T120005Z.tar"),
            (.clusterControl, "fw-edge-01_control_20250131T120005Z.tar"),
            (.clusterData, "fw-edge-01_data_20250131T120005Z.tar"),
        ])
    func deviceFiles(role: BackupRole, expected: String) throws {
        let name = BackupNaming.deviceFile(deviceName: "fw-edge-01", role: role, date: Self.date)
        #expect(name == expected)
        let parsed = try BackupNaming.parseDeviceFile("backups/" + name)
        #expect(parsed.deviceName == "fw-edge-01")
        #expect(parsed.role == role)
        #expect(parsed.date == Self.date)
    }

    @Test("Archives: device names with underscores and dots survive the round trip")
    func underscores() throws {
        let name = BackupNaming.deviceFile(deviceName: "dc1_fw.core", role: .haSecondary, date: Self.date)
        let parsed = try BackupNaming.parseDeviceFile(name)
        #expect(parsed.deviceName == "dc1_fw.core")
        #expect(parsed.role == .haSecondary)
    }

    @Test("B8: cluster bundle names are <cluster>.<timestamp>.tar.gz")
    func bundleName() throws {
        let name = BackupNaming.clusterBundle(clusterName: "cl.dc1", date: Self.date)
        #expect(name == "cl.dc1.20250131T120005Z.tar.gz")
        let parsed = try BackupNaming.parseClusterBundle(name)
        #expect(parsed.clusterName == "cl.dc1")
        #expect(parsed.date == Self.date)
    }

    @Test(
        "Archives: names that do not follow the scheme are refused",
        arguments: [
            "fw.tar", "fw_2025.tar", "fw_20250131T120005Z.tar.gz", "_20250131T120005Z.tar", "fw_20251331T120005Z.tar",
            "fw_20250230T120005Z.tar", "fw_20250131T120005Z.zip",
        ])
    func badDeviceNames(name: String) {
        let error = #expect(throws: ArchiveError.self) { try BackupNaming.parseDeviceFile(name) }
        #expect(error?.code == .badName)
    }

    @Test("Archives: bad bundle names are refused")
    func badBundleNames() {
        for name in ["cl.tar.gz", "cl_20250131T120005Z.tar.gz", ".20250131T120005Z.tar.gz", "cl.20250131T120005Z.tar"] {
            #expect(throws: ArchiveError.self, "\(name)") { try BackupNaming.parseClusterBundle(name) }
        }
    }

    @Test("Archives: the manifest's createdAt is ISO-8601 UTC")
    func manifestTimestamp() {
        #expect(BackupManifest.timestamp(Self.date) == "2025-01-31T12:00:05Z")
    }
}

@Suite("Archives: gzip and cluster bundles (B8, R8)")
struct GzipBundleTests {
    @Test("Archives: gzip round trip, empty and large inputs; output is deterministic")
    func gzipRoundTrip() throws {
        for input in [Data(), Data("hello".utf8), bytes(3_000_000)] {
            let compressed = Gzip.compress(input)
            #expect(compressed.prefix(2) == Data([0x1f, 0x8b]))
            #expect(try Gzip.decompress(compressed) == input)
            #expect(Gzip.compress(input) == compressed)
        }
    }

    @Test("Archives: gzip -d reads what Gzip.compress wrote, and Gzip reads what gzip wrote")
    func gzipInterop() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let input = Data(String(repeating: "access-rule permit tcp any any eq 443\n", count: 5000).utf8)
        try Gzip.compress(input).write(to: URL(fileURLWithPath: folder + "/ours.gz"))
        #expect(try run("/usr/bin/gzip", ["-d", folder + "/ours.gz"]).code == 0)
        #expect(FileManager.default.contents(atPath: folder + "/ours") == input)
        try input.write(to: URL(fileURLWithPath: folder + "/theirs"))
        #expect(try run("/usr/bin/gzip", ["-9", folder + "/theirs"]).code == 0)
        let theirs = try Data(contentsOf: URL(fileURLWithPath: folder + "/theirs.gz"))
        #expect(try Gzip.decompress(theirs) == input)
    }

    @Test("Archives: decompression past maxSize is refused (zip-bomb guard)")
    func zipBomb() throws {
        let bomb = Gzip.compress(Data(count: 20_000_000))
        #expect(bomb.count < 100_000)
        let error = #expect(throws: ArchiveError.self) { try Gzip.decompress(bomb, maxSize: 1_000_000) }
        #expect(error?.code == .tooLarge)
        #expect(try Gzip.decompress(bomb, maxSize: 20_000_000).count == 20_000_000)
    }

    @Test("Archives: corrupt, truncated and trailing gzip data are refused")
    func corruptGzip() throws {
        let good = Gzip.compress(bytes(10_000))
        var corrupt = good
        corrupt[corrupt.count / 2] ^= 0xff
        for bad in [Data("not gzip at all".utf8), Data(good.prefix(good.count - 10)), good + Data([1, 2, 3]), corrupt, Data()] {
            let error = #expect(throws: ArchiveError.self) { try Gzip.decompress(bad) }
            #expect(error?.code == .compression)
        }
    }

    @Test("B8, R8: a cluster bundle holds one tar per node; extract finds a node's by name")
    func bundle() throws {
        let date = Date(timeIntervalSince1970: 1_738_324_805)
        let control = try BackupArchive.build(manifest: sampleManifest(), files: sampleFiles())
        let data = Data("data node".utf8)
        let members = [
            (fileName: BackupNaming.deviceFile(deviceName: "cl1-n1", role: .clusterControl, date: date), data: control),
            (fileName: BackupNaming.deviceFile(deviceName: "cl1-n2", role: .clusterData, date: date), data: data),
        ]
        let bundle = try ClusterBundle.build(members: members)
        let extracted = try ClusterBundle.extract(bundle, node: "cl1-n1")
        #expect(extracted.fileName == "cl1-n1_control_20250131T120005Z.tar")
        #expect(extracted.data == control)
        #expect(try ClusterBundle.extract(bundle, node: "cl1-n2").data == data)
        let error = #expect(throws: ArchiveError.self) { try ClusterBundle.extract(bundle, node: "cl1-n9") }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("cl1-n1") == true && error?.message.contains("cl1-n2") == true)

        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try bundle.write(to: URL(fileURLWithPath: folder + "/b.tar.gz"))
        let listed = try run("/usr/bin/tar", ["-tzf", folder + "/b.tar.gz"])
        #expect(listed.out.split(separator: "\n").map(String.init) == members.map(\.fileName))
    }

    @Test("R8: a bundle that expands past the limit is refused")
    func bundleBomb() throws {
        let bundle = try ClusterBundle.build(members: [(fileName: "n_data_20250131T120005Z.tar", data: Data(count: 5_000_000))])
        #expect(throws: ArchiveError.self) { try ClusterBundle.extract(bundle, node: "n", maxSize: 1_000_000) }
    }
}
