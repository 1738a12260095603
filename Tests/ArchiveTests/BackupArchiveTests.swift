import Foundation
import RampartArchive
import Testing

@Suite("Archives: manifest.json and member hashes")
struct BackupArchiveTests {
    @Test("Archives: manifest.json is the first member, then the files in path order")
    func manifestFirst() throws {
        let archive = try BackupArchive.build(manifest: sampleManifest(), files: sampleFiles())
        let members = try TarReader(data: archive).members()
        #expect(members.first?.path == "manifest.json")
        #expect(members.dropFirst().map(\.path) == sampleFiles().keys.sorted())
        #expect(members.allSatisfy { $0.mode == 0o600 })
    }

    @Test("Archives: build then open returns the manifest and files; every member has its SHA-256 and size")
    func roundTrip() throws {
        let archive = try BackupArchive.build(manifest: sampleManifest(), files: sampleFiles())
        let opened = try BackupArchive.read(archive)
        var expected = sampleManifest()
        expected.files = sampleFiles().keys.sorted().map {
            .init(path: $0, size: sampleFiles()[$0]!.count, sha256: sha256Hex(sampleFiles()[$0]!))
        }
        #expect(opened.manifest == expected)
        #expect(Dictionary(uniqueKeysWithValues: opened.files.map { ($0.path, $0.contents) }) == sampleFiles())
        #expect(opened["pki/web.key"] == sampleFiles()["pki/web.key"])
        let (manifest, files) = try BackupArchive.open(archive)
        #expect(manifest == expected)
        #expect(files == sampleFiles())
        #expect(opened.manifest.files.first { $0.path == "empty" }?.sha256
            == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("Archives: the same input builds the same bytes")
    func deterministic() throws {
        #expect(
            try BackupArchive.build(manifest: sampleManifest(), files: sampleFiles())
                == BackupArchive.build(manifest: sampleManifest(), files: sampleFiles()))
    }

    @Test("B5, B11: manifest.json holds version and patch, ids, management IP, with sorted snake_case keys")
    func manifestJSON() throws {
        let json = String(decoding: try sampleManifest().encoded(), as: UTF8.self)
        for key in [
            "\"format_version\" : 1", "\"device_id\" : \"7d0f6a4e", "\"manager_id\" : \"rampart-manager\"",
            "\"management_ip\" : \"10.0.0.11\"", "\"serial\" : \"JAD2411A0B1\"", "\"patch\" : 2",
            "\"version\" : \"7.4.1\"", "\"network_modules\" : 1", "\"ha_pair_id\"", "\"cluster_id\"",
            "\"created_at\" : \"2025-01-31T12:00:00Z\"", "\"job_id\" : \"job-1\"", "\"role\" : \"standalone\"",
        ] {
            #expect(json.contains(key), "\(key) missing in \(json)")
        }
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?.keys.sorted() == [
            "cluster_id", "created_at", "device_id", "device_name", "files", "format_version", "ha_pair_id",
            "hypervisor", "interfaces", "job_id", "management_ip", "manager_id", "model", "network_modules", "platform",
            "role", "serial", "software",
        ])
        let keys = json.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(keys == keys.sorted())
        #expect(try BackupManifest.decode(Data(json.utf8)) == sampleManifest())
    }

    @Test("Archives: a flipped byte in a member makes open() fail naming that member")
    func flippedByte() throws {
        let archive = try BackupArchive.build(manifest: sampleManifest(), files: sampleFiles())
        let members = try TarReader(data: archive).members()
        // Find where pki/web.key's contents start: walk the headers.
        var offset = 0
        for member in members {
            if member.path == "pki/web.key" { break }
            offset += 512 + (member.size + 511) / 512 * 512
        }
        var damaged = archive
        damaged[offset + 512 + 30] ^= 0x20
        let error = #expect(throws: ArchiveError.self) { try BackupArchive.open(damaged) }
        #expect(error?.code == .hashMismatch)
        #expect(error?.member == "pki/web.key")
        #expect(error?.message.contains("pki/web.key") == true)
    }

    @Test("Archives: manifest.json not first, missing, extra and resized members are refused, each named")
    func mismatches() throws {
        var manifest = sampleManifest()
        let built = try BackupArchive.build(
            manifest: manifest, files: sampleFiles().map { BackupArchive.File(path: $0.key, contents: $0.value) })
        manifest = built.manifest
        let json = try manifest.encoded()
        func archive(_ members: [TarMember]) throws -> Data { try TarWriter.archive(members) }
        let files = sampleFiles().keys.sorted().map { TarMember.file($0, sampleFiles()[$0]!) }

        let notFirst = try archive([files[0], .file("manifest.json", json)] + files.dropFirst())
        #expect((#expect(throws: ArchiveError.self) { try BackupArchive.open(notFirst) })?.code == .manifest)

        let missing = try archive([.file("manifest.json", json)] + files.filter { $0.path != "running-config" })
        let missingError = #expect(throws: ArchiveError.self) { try BackupArchive.open(missing) }
        #expect(missingError?.code == .missingMember)
        #expect(missingError?.member == "running-config")

        let extra = try archive([.file("manifest.json", json)] + files + [.file("zz-extra", Data("x".utf8))])
        let extraError = #expect(throws: ArchiveError.self) { try BackupArchive.open(extra) }
        #expect(extraError?.code == .unexpectedMember)
        #expect(extraError?.member == "zz-extra")

        let resized = try archive(
            [.file("manifest.json", json)] + files.map { $0.path == "empty" ? .file("empty", Data("now full".utf8)) : $0 })
        let resizedError = #expect(throws: ArchiveError.self) { try BackupArchive.open(resized) }
        #expect(resizedError?.code == .hashMismatch)
        #expect(resizedError?.member == "empty")

        var future = manifest
        future.formatVersion = 2
        let newer = try archive([.file("manifest.json", try future.encoded())] + files)
        #expect((#expect(throws: ArchiveError.self) { try BackupArchive.open(newer) })?.code == .manifest)

        let garbage = try archive([.file("manifest.json", Data("{not json".utf8))] + files)
        #expect((#expect(throws: ArchiveError.self) { try BackupArchive.open(garbage) })?.code == .manifest)

        let unsafe = try archive([.file("manifest.json", json), .file("../evil", Data())])
        #expect((#expect(throws: ArchiveError.self) { try BackupArchive.open(unsafe) })?.code == .unsafePath)
    }

    @Test("Archives: build refuses unsafe, duplicate or reserved file paths")
    func buildRefusals() throws {
        for path in ["/abs", "../up", "a//b", "manifest.json", ""] {
            #expect(throws: ArchiveError.self, "\(path)") {
                try BackupArchive.build(manifest: sampleManifest(), files: [path: Data()])
            }
        }
    }
}
