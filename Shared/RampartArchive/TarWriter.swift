import Foundation

/// Writes a POSIX ustar archive: a 512-byte header per member (checksum, mode, mtime, size, names up to
/// 100 bytes or split over the 155-byte prefix field, 255 in all), contents padded to 512 bytes, and two
/// zero blocks at the end. Owner is root (0/0); the same members give the same bytes.
///
/// Collect the archive in memory (`init()`, then `finish()` returns it) or stream it (`init(sink:)`); a
/// member's contents can be streamed too (`addFile(_:size:mode:mtime:contents:)`).
public struct TarWriter {
    /// Size of a tar block.
    public static let blockSize = 512
    /// Largest member the 11 octal digits of the size field can hold (8 GiB - 1).
    public static let maxMemberSize = 0o77777777777

    private var buffer = Data()
    private let sink: ((Data) throws -> Void)?
    private var finished = false

    /// A writer that collects the archive in memory.
    public init() { sink = nil }

    /// A writer that hands each piece of the archive to `sink` as it is written (to a file, a hash, ...).
    public init(sink: @escaping (Data) throws -> Void) { self.sink = sink }

    /// One archive holding `members`, in the order given.
    public static func archive(_ members: [TarMember]) throws -> Data {
        var writer = TarWriter()
        for member in members { try writer.append(member) }
        return try writer.finish()
    }

    /// Appends a regular file.
    public mutating func addFile(_ path: String, contents: Data, mode: UInt32 = 0o644, mtime: Int64 = 0) throws {
        try append(.file(path, contents, mode: mode, mtime: mtime))
    }

    /// Appends a directory.
    public mutating func addDirectory(_ path: String, mode: UInt32 = 0o755, mtime: Int64 = 0) throws {
        try append(.directory(path, mode: mode, mtime: mtime))
    }

    /// Appends any member, links and special files included (the writer does not judge safety; the
    /// reader's `validateForExtraction` does).
    public mutating func append(_ member: TarMember) throws {
        precondition(!finished, "TarWriter used after finish()")
        let header = try Self.header(for: member)
        try emit(header)
        if member.kind == .file, !member.contents.isEmpty {
            try emit(member.contents)
            try emitPadding(after: member.contents.count)
        }
    }

    /// Appends a regular file of `size` bytes whose contents `produce` hands over a piece at a time (to
    /// the `write` it is given), so that a member of any size passes through a buffer of the producer's
    /// choosing. Throws `ArchiveError(.truncated)` when the pieces do not add up to `size`.
    public mutating func addFile(
        _ path: String, size: Int, mode: UInt32 = 0o644, mtime: Int64 = 0,
        contents produce: (_ write: (Data) throws -> Void) throws -> Void
    ) throws {
        precondition(!finished, "TarWriter used after finish()")
        try emit(try Self.header(path: path, kind: .file, mode: mode, mtime: mtime, size: size, linkTarget: ""))
        var written = 0
        try produce { piece in
            guard written + piece.count <= size else {
                throw ArchiveError(.truncated, member: path, "member '\(path)' was given more than its \(size) bytes")
            }
            written += piece.count
            try emit(piece)
        }
        guard written == size else {
            throw ArchiveError(
                .truncated, member: path,
                "member '\(path)' was given \(written) bytes of the \(size) its header declares")
        }
        try emitPadding(after: size)
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the archive (empty when streaming).
    public mutating func finish() throws -> Data {
        precondition(!finished, "TarWriter.finish() called twice")
        try emit(Data(count: 2 * Self.blockSize))
        finished = true
        defer { buffer = Data() }
        return buffer
    }

    private mutating func emit(_ data: Data) throws {
        if let sink { try sink(data) } else { buffer.append(data) }
    }

    private mutating func emitPadding(after size: Int) throws {
        let padding = (Self.blockSize - size % Self.blockSize) % Self.blockSize
        if padding > 0 { try emit(Data(count: padding)) }
    }

    /// The 512-byte ustar header of `member`.
    static func header(for member: TarMember) throws -> Data {
        try header(
            path: member.path, kind: member.kind, mode: member.mode, mtime: member.mtime,
            size: member.kind == .file ? member.contents.count : 0, linkTarget: member.linkTarget)
    }

    /// The 512-byte ustar header of a member of `size` bytes.
    static func header(
        path memberPath: String, kind: TarMember.Kind, mode: UInt32, mtime: Int64, size: Int, linkTarget: String
    ) throws -> Data {
        var path = memberPath
        if kind == .directory, !path.hasSuffix("/") { path += "/" }
        guard !memberPath.isEmpty, !path.utf8.contains(0) else {
            throw ArchiveError(.unsafePath, member: memberPath, "member '\(memberPath)' has an empty path or a NUL byte")
        }
        let (prefix, name) = try split(path, member: memberPath)
        guard size >= 0, size <= maxMemberSize else {
            throw ArchiveError(.tooLarge, member: memberPath, "member '\(memberPath)' is larger than a ustar header can describe")
        }
        guard linkTarget.utf8.count <= 100 else {
            throw ArchiveError(.unsafePath, member: memberPath, "link target of '\(memberPath)' is longer than 100 bytes")
        }
        guard mtime >= 0, mtime <= 0o77777777777 else {
            throw ArchiveError(.badHeader, member: memberPath, "member '\(memberPath)' has an mtime ustar cannot store")
        }
        var header = [UInt8](repeating: 0, count: blockSize)
        put(name, at: 0, width: 100, in: &header)
        put(octal(Int(mode & 0o7777), digits: 7), at: 100, width: 8, in: &header)
        put(octal(0, digits: 7), at: 108, width: 8, in: &header)  // uid
        put(octal(0, digits: 7), at: 116, width: 8, in: &header)  // gid
        put(octal(size, digits: 11), at: 124, width: 12, in: &header)
        put(octal(Int(mtime), digits: 11), at: 136, width: 12, in: &header)
        header[156] = kind.typeflag
        put(linkTarget, at: 157, width: 100, in: &header)
        put("ustar", at: 257, width: 6, in: &header)  // "ustar\0"
        put("00", at: 263, width: 2, in: &header)
        put("root", at: 265, width: 32, in: &header)
        put("root", at: 297, width: 32, in: &header)
        put(octal(0, digits: 7), at: 329, width: 8, in: &header)
        put(octal(0, digits: 7), at: 337, width: 8, in: &header)
        put(prefix, at: 345, width: 155, in: &header)
        // Checksum: sum of all bytes with the checksum field read as spaces; six octal digits, NUL, space.
        for index in 148..<156 { header[index] = 0x20 }
        let sum = header.reduce(0) { $0 + Int($1) }
        put(octal(sum, digits: 6), at: 148, width: 7, in: &header)
        header[154] = 0
        header[155] = 0x20
        return Data(header)
    }

    /// Splits `path` into ustar's prefix (≤ 155 bytes) and name (≤ 100 bytes) at a `/`.
    static func split(_ path: String, member: String) throws -> (prefix: String, name: String) {
        let bytes = Array(path.utf8)
        if bytes.count <= 100 { return ("", path) }
        // The name part may end with the directory's slash, so search for a separator before the last byte.
        let limit = bytes.count - 1
        var index = min(155, limit)
        while index > 0 {
            if bytes[index] == UInt8(ascii: "/"), bytes.count - index - 1 <= 100, index <= 155, index > 0 {
                let prefix = String(decoding: bytes[..<index], as: UTF8.self)
                let name = String(decoding: bytes[(index + 1)...], as: UTF8.self)
                if !name.isEmpty && name != "/" { return (prefix, name) }
            }
            index -= 1
        }
        throw ArchiveError(
            .unsafePath, member: member,
            "path of member '\(member)' is too long for ustar (at most 100 bytes, or 255 split at a '/' into 155 + 100)")
    }

    private static func octal(_ value: Int, digits: Int) -> String {
        let text = String(value, radix: 8)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    private static func put(_ text: String, at offset: Int, width: Int, in header: inout [UInt8]) {
        for (index, byte) in text.utf8.prefix(width).enumerated() { header[offset + index] = byte }
    }
}
