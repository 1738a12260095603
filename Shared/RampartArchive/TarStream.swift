import Foundation

/// A member's header as a streaming reader meets it: everything about the member but its contents.
public struct TarEntry: Sendable, Equatable {
    /// The path inside the archive, as stored (a directory's trailing `/` removed), extension headers applied.
    public var path: String
    /// The member type.
    public var kind: TarMember.Kind
    /// Permission bits (e.g. 0o644).
    public var mode: UInt32
    /// Modification time, seconds since the epoch.
    public var mtime: Int64
    /// The size of the contents, bytes (0 for anything but a regular file).
    public var size: Int
    /// Target of a link ("" otherwise).
    public var linkTarget: String
}

/// Reads a tar archive from an `ArchiveByteSource` one member at a time, holding one header and, at
/// most, one buffer of contents (`chunkSize`) in memory: `next()` gives the next member's header,
/// `readContents()` its contents a piece at a time (whatever is not read is skipped by the next
/// `next()`). The format and every check are `TarReader`'s (which is built on this reader): ustar, GNU
/// long names and pax headers, checksums, number fields, truncation. Extension headers are held in
/// memory whole and are refused past `extensionLimit` bytes (`ArchiveError.tooLarge`).
public struct TarStreamReader<Source: ArchiveByteSource> {
    /// The largest piece `readContents()` returns by default (1 MiB).
    public static var chunkSize: Int { 1 << 20 }
    /// The largest GNU long-name or pax extension header read (1 MiB; a path is at most
    /// `ArchivePath.maxLength` bytes).
    public static var defaultExtensionLimit: Int { 1 << 20 }

    /// The source, positioned after what has been read.
    public private(set) var source: Source
    /// The largest extension header accepted, bytes.
    public let extensionLimit: Int

    private var remaining = 0  // contents of the current member not read yet
    private var padding = 0  // zero bytes after them, up to the next 512-byte block
    private var current: (path: String, size: Int)?  // the member whose contents are being read
    private var lastPath: String?  // the last member returned
    private var previous = "the start of the archive"
    private var offset = 0
    private var longName: String?
    private var longLink: String?
    private var pax: [String: String] = [:]
    private var globalPax: [String: String] = [:]
    private var ended = false

    /// A reader of the archive in `source`, from its current position.
    public init(_ source: Source, extensionLimit: Int = defaultExtensionLimit) {
        self.source = source
        self.extensionLimit = extensionLimit
    }

    /// The next member's header (its extension headers applied), or nil after the end-of-archive marker.
    /// Skips what is left of the previous member's contents. Throws `ArchiveError` naming the member on a
    /// bad checksum, a bad header field or a truncated archive (a missing end-of-archive marker included).
    public mutating func next() throws -> TarEntry? {
        guard !ended else { return nil }
        try skipContents()
        let block = TarWriter.blockSize
        while true {
            let data = try source.read(upTo: block)
            guard data.count == block else {
                throw ArchiveError(
                    .truncated, member: lastPath,
                    "the archive is truncated: it ends after \(previous) without the end-of-archive marker")
            }
            let header = [UInt8](data)[...]
            let headerOffset = offset
            offset += block
            if header.allSatisfy({ $0 == 0 }) {
                guard longName == nil, longLink == nil, pax.isEmpty else {
                    throw ArchiveError(.truncated, member: longName, "the archive ends right after an extension header")
                }
                ended = true
                return nil
            }
            let storedName = TarReader.string(header, 0, 100)
            let prefix = TarReader.string(header, 345, 155)
            let magic = TarReader.string(header, 257, 6)
            let isUstar = magic == "ustar" || magic.hasPrefix("ustar ")
            var path = isUstar && !prefix.isEmpty ? prefix + "/" + storedName : storedName
            let described = path.isEmpty ? "at offset \(headerOffset)" : "'\(path)'"

            guard let checksum = TarReader.number(header, 148, 8) else {
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
                    "member \(described) has a bad header checksum (stored \(checksum), computed \(unsigned)): the archive is corrupt"
                )
            }
            guard let size = TarReader.number(header, 124, 12), size >= 0 else {
                throw ArchiveError(.badHeader, member: path, "member \(described) has an unreadable size field")
            }
            guard let mode = TarReader.number(header, 100, 8), let mtime = TarReader.number(header, 136, 12) else {
                throw ArchiveError(
                    .badHeader, member: path, "member \(described) has an unreadable mode or mtime field")
            }
            let typeflag = header[header.startIndex + 156]
            let truncated = ArchiveError(
                .truncated, member: path,
                "the archive is truncated: member \(described) declares \(size) bytes that are not all there")
            guard size <= TarWriter.maxMemberSize else { throw truncated }
            let padded = (size + block - 1) / block * block
            if let left = source.remainingCount, padded > left { throw truncated }
            remaining = size
            padding = padded - size
            current = (path, size)

            let isExtension = [UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g")]
                .contains(typeflag)
            if isExtension {
                guard size <= extensionLimit else {
                    throw ArchiveError(
                        .tooLarge, member: path,
                        "extension header \(described) is \(size) bytes; at most \(extensionLimit) are read")
                }
                var contents = Data()
                while let piece = try readContents() { contents.append(piece) }
                switch typeflag {
                case UInt8(ascii: "L"): longName = Self.cString(contents)
                case UInt8(ascii: "K"): longLink = Self.cString(contents)
                case UInt8(ascii: "x"): pax = try TarReader.paxRecords(contents, member: path)
                default: globalPax.merge(try TarReader.paxRecords(contents, member: path)) { $1 }
                }
                continue
            }
            var linkTarget = TarReader.string(header, 157, 100)
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
            current = (path, size)
            lastPath = path
            previous = "member '\(path)'"
            // Only regular files carry contents; a directory or link with a size field would be odd but harmless
            // (its bytes are skipped).
            return TarEntry(
                path: path, kind: kind, mode: UInt32(truncatingIfNeeded: mode), mtime: Int64(mtime),
                size: kind == .file ? size : 0, linkTarget: linkTarget)
        }
    }

    /// The next piece (at most `maxCount` bytes) of the contents of the member `next()` returned last, or
    /// nil once they have all been read. Throws `ArchiveError(.truncated)` when the data ends first.
    public mutating func readContents(maxCount: Int = chunkSize) throws -> Data? {
        guard remaining > 0 else {
            try skipPadding()
            return nil
        }
        let wanted = min(maxCount, remaining)
        let piece = try source.read(upTo: wanted)
        guard piece.count == wanted else { throw truncatedContents() }
        remaining -= wanted
        offset += wanted
        return piece
    }

    /// Reads through (and drops) what is left of the current member's contents.
    public mutating func skipContents() throws {
        while remaining > 0 {
            let wanted = min(Self.chunkSize, remaining)
            let piece = try source.read(upTo: wanted)
            guard piece.count == wanted else { throw truncatedContents() }
            remaining -= wanted
            offset += wanted
        }
        try skipPadding()
    }

    /// Gives the source to `body` (to read what follows the end-of-archive marker, for instance).
    public mutating func withSource<Result>(_ body: (inout Source) throws -> Result) rethrows -> Result {
        try body(&source)
    }

    private mutating func skipPadding() throws {
        guard padding > 0 else { return }
        let piece = try source.read(upTo: padding)
        guard piece.count == padding else { throw truncatedContents() }
        offset += padding
        padding = 0
    }

    private func truncatedContents() -> ArchiveError {
        let path = current?.path ?? ""
        let described = path.isEmpty ? "at offset \(offset)" : "'\(path)'"
        return ArchiveError(
            .truncated, member: path,
            "the archive is truncated: member \(described) declares \(current?.size ?? 0) bytes that are not all there")
    }

    private static func cString(_ data: Data) -> String {
        let end = data.firstIndex(of: 0) ?? data.endIndex
        return String(decoding: data[data.startIndex..<end], as: UTF8.self)
    }
}

/// The checks of `TarReader.validateForExtraction`, one member at a time, for readers that stream: it
/// remembers the paths it has admitted (to refuse duplicates and members below a regular file), so its
/// memory grows with the number of members, never with their contents.
public struct ExtractionCheck: Sendable {
    private var seen: [String: TarMember.Kind] = [:]

    /// No member admitted yet.
    public init() {}

    /// Members admitted so far.
    public var count: Int { seen.count }

    /// Throws `ArchiveError` when the member must not be extracted: an empty, absolute, `..` or overlong
    /// path; a symbolic or hard link; a device, FIFO or unknown type; a path seen before; a path below a
    /// regular file. Regular files and directories pass, and are remembered.
    public mutating func admit(path: String, kind: TarMember.Kind, linkTarget: String) throws {
        try ArchivePath.validateRelative(path)
        switch kind {
        case .file, .directory:
            break
        case .symbolicLink, .hardLink:
            throw ArchiveError(
                .link, member: path, "member '\(path)' is a \(kind) to '\(linkTarget)'; links are never extracted")
        case .characterDevice, .blockDevice, .fifo, .other:
            throw ArchiveError(
                .specialFile, member: path,
                "member '\(path)' is a \(kind); only regular files and directories are extracted")
        }
        let normalized = ArchivePath.normalized(path)
        if let earlier = seen[normalized], !(earlier == .directory && kind == .directory) {
            throw ArchiveError(.duplicate, member: path, "member '\(path)' appears more than once in the archive")
        }
        var parent = ""
        for component in ArchivePath.components(normalized).dropLast() {
            parent = parent.isEmpty ? String(component) : parent + "/" + component
            if seen[parent] == .file {
                throw ArchiveError(
                    .duplicate, member: path, "member '\(path)' lies below '\(parent)', which is a regular file")
            }
        }
        seen[normalized] = kind
    }

    /// `admit` for a streamed header.
    public mutating func admit(_ entry: TarEntry) throws {
        try admit(path: entry.path, kind: entry.kind, linkTarget: entry.linkTarget)
    }
}
