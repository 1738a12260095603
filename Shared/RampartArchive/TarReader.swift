import Foundation

/// Reads a tar archive held in memory: ustar, plus the GNU long-name (`L`/`K`) and pax (`x`/`g`) extension
/// headers that GNU tar writes. Every header's checksum, every number field and every size is checked;
/// data that ends early is refused as truncated. The extension headers are applied, never returned.
///
/// `members()` returns everything; `safeMembers()` refuses, before anything is written, an archive that a
/// restore must not extract (docs/rules.md#archives): absolute paths, `..`, links, devices and FIFOs, duplicate paths.
public struct TarReader: Sendable {
    /// The archive's bytes.
    public let data: Data

    /// A reader of `data`.
    public init(data: Data) { self.data = data }

    /// Every member in archive order. Throws `ArchiveError` naming the member on a bad checksum, a bad
    /// header field or a truncated archive (including a missing end-of-archive marker).
    public func members() throws -> [TarMember] {
        let bytes = [UInt8](data)
        let block = TarWriter.blockSize
        var members: [TarMember] = []
        var offset = 0
        var longName: String?
        var longLink: String?
        var pax: [String: String] = [:]
        var globalPax: [String: String] = [:]
        var previous = "the start of the archive"

        while true {
            guard offset + block <= bytes.count else {
                throw ArchiveError(
                    .truncated, member: members.last?.path,
                    "the archive is truncated: it ends after \(previous) without the end-of-archive marker")
            }
            let header = bytes[offset..<(offset + block)]
            if header.allSatisfy({ $0 == 0 }) {
                guard longName == nil, longLink == nil, pax.isEmpty else {
                    throw ArchiveError(.truncated, member: longName, "the archive ends right after an extension header")
                }
                return members
            }
            let storedName = Self.string(header, 0, 100)
            let prefix = Self.string(header, 345, 155)
            let magic = Self.string(header, 257, 6)
            let isUstar = magic == "ustar" || magic.hasPrefix("ustar ")
            var path = isUstar && !prefix.isEmpty ? prefix + "/" + storedName : storedName
            let described = path.isEmpty ? "at offset \(offset)" : "'\(path)'"

            guard let checksum = Self.number(header, 148, 8) else {
                throw ArchiveError(.badHeader, member: path, "member \(described) has an unreadable checksum field")
            }
            var unsigned = 0
            var signed = 0
            for (index, byte) in header.enumerated() {
                let value = (148..<156).contains(index) ? 0x20 : byte
                unsigned += Int(value)
                signed += Int(Int8(bitPattern: value))
            }
            guard checksum == unsigned || checksum == signed else {
                throw ArchiveError(
                    .badChecksum, member: path,
                    "member \(described) has a bad header checksum (stored \(checksum), computed \(unsigned)): the archive is corrupt")
            }
            guard let size = Self.number(header, 124, 12), size >= 0 else {
                throw ArchiveError(.badHeader, member: path, "member \(described) has an unreadable size field")
            }
            guard let mode = Self.number(header, 100, 8), let mtime = Self.number(header, 136, 12) else {
                throw ArchiveError(.badHeader, member: path, "member \(described) has an unreadable mode or mtime field")
            }
            let typeflag = header[header.startIndex + 156]
            let contentStart = offset + block
            let padded = (size + block - 1) / block * block
            guard size <= TarWriter.maxMemberSize, contentStart + padded <= bytes.count else {
                throw ArchiveError(
                    .truncated, member: path,
                    "the archive is truncated: member \(described) declares \(size) bytes that are not all there")
            }
            let contents = Data(bytes[contentStart..<(contentStart + size)])
            offset = contentStart + padded

            switch typeflag {
            case UInt8(ascii: "L"):
                longName = Self.cString(contents)
                continue
            case UInt8(ascii: "K"):
                longLink = Self.cString(contents)
                continue
            case UInt8(ascii: "x"):
                pax = try Self.paxRecords(contents, member: path)
                continue
            case UInt8(ascii: "g"):
                globalPax.merge(try Self.paxRecords(contents, member: path)) { $1 }
                continue
            default:
                break
            }
            var linkTarget = Self.string(header, 157, 100)
            if let value = globalPax["path"] { path = value }
            if let value = longName { path = value }
            if let value = pax["path"] { path = value }
            if let value = globalPax["linkpath"] { linkTarget = value }
            if let value = longLink { linkTarget = value }
            if let value = pax["linkpath"] { linkTarget = value }
            longName = nil
            longLink = nil
            pax = [:]

            let kind = TarMember.Kind(typeflag: typeflag)
            if kind == .directory, path.count > 1, path.hasSuffix("/") { path.removeLast() }
            // Only regular files carry contents; a directory or link with a size field would be odd but harmless.
            members.append(
                TarMember(
                    path: path, kind: kind, mode: UInt32(truncatingIfNeeded: mode), mtime: Int64(mtime),
                    contents: kind == .file ? contents : Data(), linkTarget: linkTarget))
            previous = "member '\(path)'"
        }
    }

    /// Every member, after `validateForExtraction`: what a restore may write below its folder.
    public func safeMembers() throws -> [TarMember] {
        let members = try members()
        try Self.validateForExtraction(members)
        return members
    }

    /// Throws `ArchiveError` naming the first member that must not be extracted: an empty, absolute or
    /// `..` path; a symbolic or hard link; a device, FIFO or unknown type; a path seen twice; a member
    /// below a regular file. Regular files and directories pass.
    public static func validateForExtraction(_ members: [TarMember]) throws {
        var seen: [String: TarMember.Kind] = [:]
        for member in members {
            try ArchivePath.validateRelative(member.path)
            switch member.kind {
            case .file, .directory:
                break
            case .symbolicLink, .hardLink:
                throw ArchiveError(
                    .link, member: member.path,
                    "member '\(member.path)' is a \(member.kind) to '\(member.linkTarget)'; links are never extracted")
            case .characterDevice, .blockDevice, .fifo, .other:
                throw ArchiveError(
                    .specialFile, member: member.path,
                    "member '\(member.path)' is a \(member.kind); only regular files and directories are extracted")
            }
            let normalized = ArchivePath.normalized(member.path)
            if let earlier = seen[normalized], !(earlier == .directory && member.kind == .directory) {
                throw ArchiveError(.duplicate, member: member.path, "member '\(member.path)' appears more than once in the archive")
            }
            var parent = ""
            for component in ArchivePath.components(normalized).dropLast() {
                parent = parent.isEmpty ? String(component) : parent + "/" + component
                if seen[parent] == .file {
                    throw ArchiveError(
                        .duplicate, member: member.path, "member '\(member.path)' lies below '\(parent)', which is a regular file")
                }
            }
            seen[normalized] = member.kind
        }
    }

    // MARK: fields

    /// A NUL-terminated (or full-width) text field.
    static func string(_ header: ArraySlice<UInt8>, _ offset: Int, _ width: Int) -> String {
        let start = header.startIndex + offset
        let field = header[start..<(start + width)]
        let end = field.firstIndex(of: 0) ?? field.endIndex
        return String(decoding: field[start..<end], as: UTF8.self)
    }

    /// An octal number field (spaces and NULs around it allowed), or GNU base-256 (high bit set).
    static func number(_ header: ArraySlice<UInt8>, _ offset: Int, _ width: Int) -> Int? {
        let start = header.startIndex + offset
        let field = header[start..<(start + width)]
        if let first = field.first, first & 0x80 != 0 {
            guard first == 0x80 else { return nil }  // negative numbers: refused
            var value = 0
            for byte in field.dropFirst() {
                guard value <= (Int.max >> 8) else { return nil }
                value = value << 8 | Int(byte)
            }
            return value
        }
        var value = 0
        var digits = 0
        var ended = false
        for byte in field {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                guard !ended, value <= (Int.max >> 3) else { return nil }
                value = value << 3 | Int(byte - UInt8(ascii: "0"))
                digits += 1
            case 0, UInt8(ascii: " "):
                if digits > 0 { ended = true }
            default:
                return nil
            }
        }
        return value
    }

    private static func cString(_ data: Data) -> String {
        let end = data.firstIndex(of: 0) ?? data.endIndex
        return String(decoding: data[data.startIndex..<end], as: UTF8.self)
    }

    /// pax extended header records: "<length> <key>=<value>\n".
    static func paxRecords(_ data: Data, member: String) throws -> [String: String] {
        var records: [String: String] = [:]
        let bytes = [UInt8](data)
        var index = 0
        while index < bytes.count {
            guard let space = bytes[index...].firstIndex(of: UInt8(ascii: " ")),
                let length = Int(String(decoding: bytes[index..<space], as: UTF8.self)), length > 0,
                index + length <= bytes.count, bytes[index + length - 1] == UInt8(ascii: "\n")
            else {
                throw ArchiveError(.badHeader, member: member, "pax header '\(member)' has a malformed record")
            }
            let record = bytes[(space + 1)..<(index + length - 1)]
            if let equals = record.firstIndex(of: UInt8(ascii: "=")) {
                let key = String(decoding: record[record.startIndex..<equals], as: UTF8.self)
                records[key] = String(decoding: record[(equals + 1)...], as: UTF8.self)
            }
            index += length
        }
        return records
    }
}
