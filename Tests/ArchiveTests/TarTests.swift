import Foundation
import RampartArchive
import Testing

@Suite("Archives: the tar format, TarWriter and TarReader")
struct TarFormatTests {
    @Test("Archives: files and directories round-trip with path, type, mode, mtime and contents")
    func roundTrip() throws {
        let members: [TarMember] = [
            .directory("config", mode: 0o750, mtime: 1_700_000_000),
            .file("config/running-config", Data("hostname fw\n".utf8), mode: 0o644, mtime: 1_700_000_001),
            .file("config/big.bin", bytes(70_000), mode: 0o600, mtime: 1_700_000_002),
            .file("config/empty", Data(), mode: 0o600, mtime: 5),
            .file("config/exactly-512", bytes(512, seed: 3)),
        ]
        let archive = try TarWriter.archive(members)
        #expect(archive.count % 512 == 0)
        let read = try TarReader(data: archive).members()
        #expect(read == members)
    }

    @Test("Archives: the same members give the same bytes")
    func deterministic() throws {
        let members: [TarMember] = [.directory("a"), .file("a/b", bytes(1000)), .file("c", Data("x".utf8))]
        #expect(try TarWriter.archive(members) == TarWriter.archive(members))
    }

    @Test("Archives: headers are 512 bytes with ustar magic and a valid checksum; two zero blocks end the archive")
    func headerLayout() throws {
        let archive = try TarWriter.archive([.file("f", Data("hello".utf8), mode: 0o640, mtime: 0o1234)])
        #expect(archive.count == 512 + 512 + 1024)
        let header = [UInt8](archive.prefix(512))
        #expect(String(decoding: header[257..<263], as: UTF8.self) == "ustar\0")
        #expect(String(decoding: header[263..<265], as: UTF8.self) == "00")
        #expect(String(decoding: header[124..<135], as: UTF8.self) == "00000000005")
        #expect(String(decoding: header[100..<107], as: UTF8.self) == "0000640")
        var sum = 0
        for (index, byte) in header.enumerated() { sum += (148..<156).contains(index) ? 32 : Int(byte) }
        #expect(Int(String(decoding: header[148..<154], as: UTF8.self), radix: 8) == sum)
        #expect(archive.suffix(1024).allSatisfy { $0 == 0 })
    }

    @Test("Archives: paths over 100 bytes use the ustar prefix field, up to 255; longer is refused")
    func longPaths() throws {
        let folder = String(repeating: "d", count: 120)
        let long = folder + "/" + String(repeating: "f", count: 90)  // 211 bytes
        let archive = try TarWriter.archive([.file(long, Data("x".utf8)), .directory(folder + "/sub")])
        let read = try TarReader(data: archive).members()
        #expect(read.map(\.path) == [long, folder + "/sub"])
        let tooLong = String(repeating: "a", count: 160) + "/" + String(repeating: "b", count: 101)
        #expect(throws: ArchiveError.self) { try TarWriter.archive([.file(tooLong, Data())]) }
        let noSlash = String(repeating: "n", count: 101)
        #expect(throws: ArchiveError.self) { try TarWriter.archive([.file(noSlash, Data())]) }
    }

    @Test("Archives: the incremental writer streams the same bytes it would collect")
    func incremental() throws {
        let members: [TarMember] = [.directory("x"), .file("x/y", bytes(1500)), .file("z", Data())]
        final class Collector: @unchecked Sendable { var data = Data() }
        let collector = Collector()
        var writer = TarWriter { collector.data.append($0) }
        for member in members { try writer.append(member) }
        let returned = try writer.finish()
        #expect(returned.isEmpty)
        #expect(collector.data == (try TarWriter.archive(members)))
    }
}

@Suite("Archives: GNU tar interoperability")
struct GNUTarInteropTests {
    @Test("Archives: GNU tar lists and extracts what TarWriter wrote, long paths included")
    func gnuReadsOurs() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let long = String(repeating: "p", count: 110) + "/" + String(repeating: "q", count: 80)
        let members: [TarMember] = [
            .directory("conf"), .file("conf/a.txt", Data("alpha\n".utf8), mode: 0o640, mtime: 1_600_000_000),
            .file("conf/b.bin", bytes(10_000)), .file(long, Data("deep".utf8)),
        ]
        try TarWriter.archive(members).write(to: URL(fileURLWithPath: folder + "/ours.tar"))
        let list = try run("/usr/bin/tar", ["-tvf", folder + "/ours.tar"])
        #expect(list.code == 0, "\(list.err)")
        let names = try run("/usr/bin/tar", ["-tf", folder + "/ours.tar"]).out.split(separator: "\n").map(String.init)
        #expect(names == ["conf/", "conf/a.txt", "conf/b.bin", long])
        #expect(list.out.contains("-rw-r-----"))
        try FileManager.default.createDirectory(atPath: folder + "/out", withIntermediateDirectories: true)
        let extract = try run("/usr/bin/tar", ["-xf", folder + "/ours.tar", "-C", folder + "/out"])
        #expect(extract.code == 0, "\(extract.err)")
        #expect(FileManager.default.contents(atPath: folder + "/out/conf/b.bin") == bytes(10_000))
        #expect(FileManager.default.contents(atPath: folder + "/out/" + long) == Data("deep".utf8))
        let attributes = try FileManager.default.attributesOfItem(atPath: folder + "/out/conf/a.txt")
        #expect((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 == 1_600_000_000)
    }

    @Test("Archives: TarReader reads what GNU tar created", arguments: ["ustar", "gnu", "pax"])
    func oursReadsGNU(format: String) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = folder + "/src"
        // ustar cannot store a 130-byte file name without a slash to split at; gnu and pax can.
        let deepName = format == "ustar" ? "short.txt" : String(repeating: "L", count: 130) + ".txt"
        try FileManager.default.createDirectory(atPath: source + "/sub/deeper", withIntermediateDirectories: true)
        try Data("one\n".utf8).write(to: URL(fileURLWithPath: source + "/one.txt"))
        try bytes(5000).write(to: URL(fileURLWithPath: source + "/sub/data.bin"))
        try Data("deep\n".utf8).write(to: URL(fileURLWithPath: source + "/sub/deeper/" + deepName))
        let created = try run(
            "/usr/bin/tar", ["--format=\(format)", "--sort=name", "-cf", folder + "/theirs.tar", "one.txt", "sub"], in: source)
        #expect(created.code == 0, "\(created.err)")
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/theirs.tar"))
        let members = try TarReader(data: data).safeMembers()
        let files = Dictionary(uniqueKeysWithValues: members.filter { $0.kind == .file }.map { ($0.path, $0.contents) })
        #expect(files["one.txt"] == Data("one\n".utf8))
        #expect(files["sub/data.bin"] == bytes(5000))
        #expect(files["sub/deeper/" + deepName] == Data("deep\n".utf8))
        #expect(members.contains { $0.path == "sub/deeper" && $0.kind == .directory })
    }

    @Test("Archives: a GNU tar archive with a symbolic link is refused for extraction")
    func gnuSymlinkRefused() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createSymbolicLink(atPath: folder + "/escape", withDestinationPath: "/etc/passwd")
        #expect(try run("/usr/bin/tar", ["-cf", folder + "/l.tar", "escape"], in: folder).code == 0)
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/l.tar"))
        #expect(try TarReader(data: data).members().first?.kind == .symbolicLink)
        let error = #expect(throws: ArchiveError.self) { try TarReader(data: data).safeMembers() }
        #expect(error?.code == .link)
        #expect(error?.message.contains("escape") == true)
    }
}

@Suite("Archives: what a restore must never extract")
struct TarRefusalTests {
    static let good = try! TarWriter.archive([.file("a", bytes(700)), .file("b", Data("bee".utf8))])

    @Test("Archives: a truncated archive is refused, wherever it is cut", arguments: [0, 100, 512, 700, 1024, 1536, 2048, 2559, 2560])
    func truncated(cut: Int) throws {
        let data = Self.good.prefix(cut)
        let error = #expect(throws: ArchiveError.self) { try TarReader(data: Data(data)).members() }
        #expect(error?.code == .truncated)
    }

    @Test("Archives: a bad header checksum is refused, naming the member")
    func badChecksum() throws {
        var data = Self.good
        data[1536] ^= 0x01  // the second header ("b") follows a's header and its 2 content blocks: "b" becomes "c"
        let error = #expect(throws: ArchiveError.self) { try TarReader(data: data).members() }
        #expect(error?.code == .badChecksum)
        #expect(error?.member == "c")
    }

    @Test("Archives: a corrupted name in the first header is refused by its checksum")
    func badChecksumNamed() throws {
        var data = Self.good
        data[0] = UInt8(ascii: "z")
        let error = #expect(throws: ArchiveError.self) { try TarReader(data: data).members() }
        #expect(error?.code == .badChecksum)
        #expect(error?.member == "z")
        #expect(error?.message.contains("'z'") == true)
    }

    @Test(
        "Archives: unsafe paths are refused before anything is written",
        arguments: ["/etc/passwd", "../outside", "config/../../outside", "a/./../../b", ".."])
    func unsafePaths(path: String) throws {
        let archive = try TarWriter.archive([.file("fine", Data()), .file(path, Data("x".utf8))])
        #expect(try TarReader(data: archive).members().count == 2)  // readable ...
        let error = #expect(throws: ArchiveError.self) { try TarReader(data: archive).safeMembers() }  // ... not extractable
        #expect(error?.code == .unsafePath)
        #expect(error?.member == path)
        #expect(error?.message.contains(path) == true)
    }

    @Test(
        "Archives: links of any kind, devices and FIFOs are refused",
        arguments: [
            (TarMember.Kind.symbolicLink, ArchiveError.Code.link), (.hardLink, .link), (.characterDevice, .specialFile),
            (.blockDevice, .specialFile), (.fifo, .specialFile), (.other(UInt8(ascii: "7")), .specialFile),
        ])
    func specialMembers(kind: TarMember.Kind, code: ArchiveError.Code) throws {
        let archive = try TarWriter.archive([TarMember(path: "odd", kind: kind, linkTarget: "target")])
        let error = #expect(throws: ArchiveError.self) { try TarReader(data: archive).safeMembers() }
        #expect(error?.code == code)
        #expect(error?.member == "odd")
    }

    @Test("Archives: duplicate paths are refused, also when spelled differently")
    func duplicates() throws {
        for second in ["a", "./a"] {
            let archive = try TarWriter.archive([.file("a", Data("1".utf8)), .file(second, Data("2".utf8))])
            let error = #expect(throws: ArchiveError.self) { try TarReader(data: archive).safeMembers() }
            #expect(error?.code == .duplicate)
        }
        let below = try TarWriter.archive([.file("a", Data()), .file("a/b", Data())])
        #expect(throws: ArchiveError.self) { try TarReader(data: below).safeMembers() }
        let dirs = try TarWriter.archive([.directory("d"), .directory("d"), .file("d/f", Data())])
        #expect(try TarReader(data: dirs).safeMembers().count == 3)
    }

    @Test("Archives: a member whose size runs past the data is refused as truncated, naming it")
    func sizePastEnd() throws {
        let archive = try TarWriter.archive([.file("big", bytes(5000))])
        let error = #expect(throws: ArchiveError.self) { try TarReader(data: Data(archive.prefix(2048))).members() }
        #expect(error?.code == .truncated)
        #expect(error?.member == "big")
    }
}
