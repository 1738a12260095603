import Foundation

/// Reads a tar archive held in memory: ustar, plus the GNU long-name (`L`/`K`) and pax (`x`/`g`) extension
/// headers that GNU tar writes. Every header's checksum, every number field and every size is checked;
/// data that ends early is refused as truncated. The extension headers are applied, never returned.
/// It is `TarStreamReader` over the data, every member's contents collected; an archive on disk is read
/// with `TarStreamReader` itself, a buffer at a time.
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
        var reader = TarStreamReader(DataSource(data))
        var members: [TarMember] = []
        while let entry = try reader.next() {
            var contents = Data()
            if entry.kind == .file {
                contents.reserveCapacity(entry.size)
                while let piece = try reader.readContents() { contents.append(piece) }
            }
            members.append(
                TarMember(
                    path: entry.path, kind: entry.kind, mode: entry.mode, mtime: entry.mtime, contents: contents,
                    linkTarget: entry.linkTarget))
        }
        return members
    }

    /// Every member, after `validateForExtraction`: what a restore may write below its folder.
    public func safeMembers() throws -> [TarMember] {
        let members = try members()
        try Self.validateForExtraction(members)
        return members
    }

    /// Throws `ArchiveError` naming the first member that must not be extracted: an empty, absolute,
    /// `..` or overlong path; a symbolic or hard link; a device, FIFO or unknown type; a path seen twice;
    /// a member below a regular file. Regular files and directories pass (`ExtractionCheck`).
    public static func validateForExtraction(_ members: [TarMember]) throws {
        var check = ExtractionCheck()
        for member in members {
            try check.admit(path: member.path, kind: member.kind, linkTarget: member.linkTarget)
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
