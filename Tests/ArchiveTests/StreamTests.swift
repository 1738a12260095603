import Foundation
import RampartArchive
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A source that records the largest read asked of it.
struct RecordingSource<Base: ArchiveByteSource>: ArchiveByteSource {
    var base: Base
    var largestRead = 0

    mutating func read(upTo count: Int) throws -> Data {
        largestRead = max(largestRead, count)
        return try base.read(upTo: count)
    }

    var remainingCount: Int? { base.remainingCount }
}

/// `archive` written to a new file in `folder`; its path.
func written(_ archive: Data, in folder: String, as name: String = "backup.tar") throws -> String {
    let path = folder + "/" + name
    try archive.write(to: URL(fileURLWithPath: path))
    return path
}

/// `archive` with the typeflag of the header at `offset` changed to `flag` (and the checksum redone).
func retyped(_ archive: Data, headerAt offset: Int, to flag: UInt8) -> Data {
    var bytes = [UInt8](archive)
    bytes[offset + 156] = flag
    for index in 148..<156 { bytes[offset + index] = 0x20 }
    let sum = bytes[offset..<(offset + 512)].reduce(0) { $0 + Int($1) }
    let digits = Array(String(sum, radix: 8).utf8)
    let field = [UInt8](repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits
    bytes.replaceSubrange((offset + 148)..<(offset + 154), with: field)
    bytes[offset + 154] = 0
    bytes[offset + 155] = 0x20
    return Data(bytes)
}

@Suite("Archives: streaming readers and writers hold a buffer, never a whole archive (docs/rules.md#archives)")
struct ArchiveStreamTests {
    /// A backup with a file of 3 MiB among the sample files.
    static func largeBackup() throws -> Data {
        var files = sampleFiles()
        files["policies/large.bin"] = bytes(3 << 20, seed: 9)
        return try BackupArchive.build(manifest: sampleManifest(), files: files)
    }

    @Test("Archives: StreamReader over a file verifies a backup as read() does, in pieces of at most 1 MiB")
    func streamReaderOverFile() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let archive = try Self.largeBackup()
        let file = try ArchiveFile(path: try written(archive, in: folder))
        #expect(file.size == archive.count)
        var reader = try BackupArchive.StreamReader(file.source())
        var files: [String: Data] = [:]
        var largestPiece = 0
        while let entry = try reader.nextFile() {
            var contents = Data()
            while let piece = try reader.readChunk() {
                largestPiece = max(largestPiece, piece.count)
                contents.append(piece)
            }
            #expect(contents.count == entry.size)
            files[entry.path] = contents
        }
        let listing = try reader.finish()
        let read = try BackupArchive.read(archive)
        #expect(files == Dictionary(uniqueKeysWithValues: read.files.map { ($0.path, $0.contents) }))
        #expect(listing.manifest == read.manifest && listing.manifestJSON == read.manifestJSON)
        #expect(listing.files.map(\.path) == read.files.map(\.path))
        #expect(listing.archiveSHA256 == sha256Hex(archive) && listing.byteCount == archive.count)
        #expect(largestPiece == 1 << 20)
        // The tar reader never asks its source for more than a buffer, even to skip 3 MiB.
        var tar = TarStreamReader(RecordingSource(base: file.source()))
        while try tar.next() != nil {}
        #expect(tar.source.largestRead == 1 << 20)
    }

    @Test("Archives: StreamReader refuses what read() refuses, with the same code, naming the same member")
    func streamReaderRefusals() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let archive = try Self.largeBackup()
        let members = try TarReader(data: archive).members()
        var flipped = archive
        flipped[archive.count / 2] ^= 0x01  // inside policies/large.bin: only its SHA-256 tells
        let damaged: [Data] = [
            flipped,
            Data(archive.prefix(archive.count / 2)),
            try TarWriter.archive(members.filter { $0.path != "running-config" }),
            try TarWriter.archive(members + [.file("extra", Data("x".utf8))]),
            try TarWriter.archive(Array(members.dropFirst()) + [members[0]]),
            try TarWriter.archive(
                members + [TarMember(path: "pki/escape", kind: .symbolicLink, linkTarget: "/etc/passwd")]),
            try TarWriter.archive(members + [.file("../outside", Data("x".utf8))]),
        ]
        for (index, data) in damaged.enumerated() {
            let inMemory = #expect(throws: ArchiveError.self) { try BackupArchive.read(data) }
            let path = try written(data, in: folder, as: "damaged-\(index).tar")
            let streamed = #expect(throws: ArchiveError.self) {
                var reader = try BackupArchive.StreamReader(try ArchiveFile(path: path).source())
                _ = try reader.finish()
            }
            #expect(streamed?.code == inMemory?.code, "archive \(index): \(String(describing: streamed))")
            #expect(streamed?.member == inMemory?.member, "archive \(index)")
        }
    }

    @Test("Archives: a file cut shorter after it was opened reads as truncated; a link is not opened")
    func fileChangedUnderneath() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let archive = try Self.largeBackup()
        let path = try written(archive, in: folder)
        let file = try ArchiveFile(path: path)
        #expect(truncate(path, off_t(archive.count / 2)) == 0)
        let error = #expect(throws: ArchiveError.self) {
            var reader = try BackupArchive.StreamReader(file.source())
            _ = try reader.finish()
        }
        #expect(error?.code == .truncated)
        #expect(symlink(path, folder + "/link.tar") == 0)
        #expect(
            (#expect(throws: ArchiveError.self) { try ArchiveFile(path: folder + "/link.tar") })?.code == .unreadable)
        #expect((#expect(throws: ArchiveError.self) { try ArchiveFile(path: folder) })?.code == .unreadable)
        let tooLarge = #expect(throws: ArchiveError.self) { try ArchiveFile(path: path, maxSize: 100) }
        #expect(tooLarge?.code == .tooLarge)
    }

    @Test(
        "Archives: what a streaming reader holds whole is bounded: manifest.json, extension headers, paths, directories"
    )
    func boundedHoldings() throws {
        // manifest.json over 4 MiB.
        let bigManifest = try TarWriter.archive([
            .file("manifest.json", Data(count: BackupArchive.maxManifestSize + 1))
        ])
        let manifestError = #expect(throws: ArchiveError.self) { try BackupArchive.read(bigManifest) }
        #expect(manifestError?.code == .tooLarge && manifestError?.member == "manifest.json")
        // A GNU long-name header over 1 MiB (a file member retyped 'L').
        let longName = retyped(
            try TarWriter.archive([.file("././@LongLink", Data(count: (1 << 20) + 1)), .file("a", Data())]),
            headerAt: 0, to: UInt8(ascii: "L"))
        let extensionError = #expect(throws: ArchiveError.self) { try TarReader(data: longName).members() }
        #expect(extensionError?.code == .tooLarge)
        // ... while one of a sensible size is applied.
        let name = String(repeating: "d/", count: 100) + "file"
        let sensible = retyped(
            try TarWriter.archive([.file("././@LongLink", Data(name.utf8)), .file("short", Data("x".utf8))]),
            headerAt: 0, to: UInt8(ascii: "L"))
        #expect(try TarReader(data: sensible).members().map(\.path) == [name])
        // A path over 4096 bytes.
        let long = String(repeating: "a/", count: 2100) + "b"
        let pathError = #expect(throws: ArchiveError.self) { try ArchivePath.validateRelative(long) }
        #expect(pathError?.code == .unsafePath)
        var check = ExtractionCheck()
        #expect(throws: ArchiveError.self) { try check.admit(path: long, kind: .file, linkTarget: "") }
        // More than 4096 directory members in a backup.
        let manifest = TarMember.file("manifest.json", try sampleManifest().encoded(), mode: 0o600)
        let directories = (0...BackupArchive.maxDirectories).map { TarMember.directory("d\($0)") }
        let manyDirectories = try TarWriter.archive([manifest] + directories)
        let directoriesError = #expect(throws: ArchiveError.self) { try BackupArchive.read(manyDirectories) }
        #expect(directoriesError?.code == .tooLarge)
        #expect(try BackupArchive.read(try TarWriter.archive([manifest] + directories.dropLast())).files.isEmpty)
    }

    @Test("Archives: BackupArchive.write streams the bytes build makes, and stops at a file that changed")
    func streamedWrite() throws {
        let files = sampleFiles().map { BackupArchive.File(path: $0.key, contents: $0.value) }
        let built = try BackupArchive.build(manifest: sampleManifest(), files: files)
        var pieces: [Data] = []
        let manifest = try BackupArchive.write(
            manifest: sampleManifest(), files: files.map(BackupArchive.StreamedFile.init)
        ) {
            pieces.append($0)
        }
        #expect(pieces.reduce(Data(), +) == built.archive && manifest == built.manifest)
        // Produced in pieces of 1 KiB: the same bytes.
        let chunked = files.map { file in
            BackupArchive.StreamedFile(path: file.path, size: file.contents.count, sha256: sha256Hex(file.contents)) {
                write in
                var offset = file.contents.startIndex
                while offset < file.contents.endIndex {
                    let end = min(offset + 1024, file.contents.endIndex)
                    try write(file.contents[offset..<end])
                    offset = end
                }
            }
        }
        var again = Data()
        _ = try BackupArchive.write(manifest: sampleManifest(), files: chunked) { again.append($0) }
        #expect(again == built.archive)
        // A file whose contents are not those hashed (it changed between the two readings of an export).
        var changed = files.map(BackupArchive.StreamedFile.init)
        let index = changed.firstIndex { $0.size > 0 }!
        let size = changed[index].size
        changed[index].contents = { write in try write(Data(repeating: 0x41, count: size)) }
        let error = #expect(throws: ArchiveError.self) {
            _ = try BackupArchive.write(manifest: sampleManifest(), files: changed) { _ in }
        }
        #expect(error?.code == .hashMismatch && error?.member == changed[index].path)
        // A producer that gives another size than the header declares.
        var writer = TarWriter()
        let sizeError = #expect(throws: ArchiveError.self) {
            try writer.addFile("short", size: 10) { write in try write(Data(count: 9)) }
        }
        #expect(sizeError?.code == .truncated)
    }

    @Test("Archives: gzip streamed (Deflater, InflatingSource) round-trips, refuses damage and stops at maxSize")
    func streamedGzip() throws {
        for input in [Data(), Data("hello".utf8), bytes(3_000_000)] {
            var compressed = Data()
            let deflater = try Gzip.Deflater { compressed.append($0) }
            var offset = 0
            while offset < input.count {
                let end = min(offset + 100_000, input.count)
                try deflater.write(input.subdata(in: offset..<end))
                offset = end
            }
            try deflater.finish()
            #expect(try Gzip.decompress(compressed) == input)
            var source = try Gzip.InflatingSource(DataSource(Gzip.compress(input)))
            var output = Data()
            while true {
                let piece = try source.read(upTo: 70_000)
                if piece.isEmpty { break }
                output.append(piece)
            }
            #expect(output == input)
        }
        func inflateAll(_ data: Data, maxSize: Int = Gzip.defaultMaxSize) throws {
            var source = try Gzip.InflatingSource(DataSource(data), maxSize: maxSize)
            while !(try source.read(upTo: 1 << 20)).isEmpty {}
        }
        let good = Gzip.compress(bytes(10_000))
        var corrupt = good
        corrupt[corrupt.count / 2] ^= 0xff
        for bad in [
            Data("not gzip at all".utf8), Data(good.prefix(good.count - 10)), good + Data([1, 2, 3]), corrupt, Data(),
        ] {
            let error = #expect(throws: ArchiveError.self) { try inflateAll(bad) }
            #expect(error?.code == .compression)
        }
        let bomb = Gzip.compress(Data(count: 20_000_000))
        #expect((#expect(throws: ArchiveError.self) { try inflateAll(bomb, maxSize: 1_000_000) })?.code == .tooLarge)
        try inflateAll(bomb, maxSize: 20_000_000)
    }

    @Test("B8, R8: ClusterBundle.write streams the bundle build makes; fileNames lists its node files from a stream")
    func streamedBundle() throws {
        let control = try BackupArchive.build(manifest: sampleManifest(), files: sampleFiles())
        let data = bytes(2_000_000, seed: 3)
        let members = [
            (fileName: "cl1-n1_control_20250131T120005Z.tar", data: control),
            (fileName: "cl1-n2_data_20250131T120005Z.tar", data: data),
        ]
        let bundle = try ClusterBundle.build(members: members)
        #expect(try ClusterBundle.extract(bundle, node: "cl1-n2").data == data)
        #expect(try ClusterBundle.fileNames(DataSource(bundle)) == members.map(\.fileName))
        var streamed = Data()
        try ClusterBundle.write(
            members: members.map { member in
                ClusterBundle.StreamedMember(fileName: member.fileName, size: member.data.count) { write in
                    var offset = 0
                    while offset < member.data.count {
                        let end = min(offset + 65_536, member.data.count)
                        try write(member.data.subdata(in: offset..<end))
                        offset = end
                    }
                }
            }
        ) { streamed.append($0) }
        #expect(try Gzip.decompress(streamed) == Gzip.decompress(bundle))
        #expect(try ClusterBundle.extract(streamed, node: "cl1-n1").data == control)
        // A bundle with an unsafe member lists nothing.
        let hostile = Gzip.compress(try TarWriter.archive([.file("../n_data_20250131T120005Z.tar", Data())]))
        #expect(throws: ArchiveError.self) { try ClusterBundle.fileNames(DataSource(hostile)) }
    }

    @Test("B8, R8: a node's file is found in a bundle file and copied out of it as a stream; a missing node is named")
    func streamedExtract() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let control = try BackupArchive.build(manifest: sampleManifest(), files: sampleFiles())
        let data = bytes(3_000_000, seed: 5)
        let bundle = try ClusterBundle.build(members: [
            (fileName: "cl1-n1_control_20250131T120005Z.tar", data: control),
            (fileName: "cl1-n2_data_20250131T120005Z.tar", data: data),
        ])
        let file = try ArchiveFile(path: try written(bundle, in: folder, as: "cl1.20250131T120005Z.tar.gz"))
        let name = try ClusterBundle.nodeFile(in: .file(file), node: "cl1-n2")
        #expect(name == "cl1-n2_data_20250131T120005Z.tar")
        var copied = Data()
        var largestPiece = 0
        let size = try ClusterBundle.copy(name, from: .file(file)) { piece in
            largestPiece = max(largestPiece, piece.count)
            copied.append(piece)
        }
        #expect(size == data.count && copied == data && largestPiece <= 1 << 20)
        let error = #expect(throws: ArchiveError.self) { try ClusterBundle.nodeFile(in: .file(file), node: "cl1-n9") }
        #expect(error?.code == .notFound && error?.message.contains("cl1-n1 (control), cl1-n2 (data)") == true)
        #expect(throws: ArchiveError.self) { _ = try ClusterBundle.copy("absent.tar", from: .file(file)) { _ in } }
    }
}
