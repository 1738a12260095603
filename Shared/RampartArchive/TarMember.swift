import Foundation

/// One member of a tar archive: its path, type, permission bits, modification time and contents.
public struct TarMember: Sendable, Equatable {
    /// The member types of ustar (POSIX.1-1988), plus whatever else a reader meets.
    public enum Kind: Sendable, Equatable, CustomStringConvertible {
        /// A regular file (typeflag '0' or NUL).
        case file
        /// A directory ('5').
        case directory
        /// A symbolic link ('2'); its target is `linkTarget`.
        case symbolicLink
        /// A hard link ('1'); its target is `linkTarget`.
        case hardLink
        /// A character device ('3').
        case characterDevice
        /// A block device ('4').
        case blockDevice
        /// A named pipe ('6').
        case fifo
        /// Any other typeflag (contiguous files, vendor extensions).
        case other(UInt8)

        /// The ustar typeflag byte.
        public var typeflag: UInt8 {
            switch self {
            case .file: UInt8(ascii: "0")
            case .hardLink: UInt8(ascii: "1")
            case .symbolicLink: UInt8(ascii: "2")
            case .characterDevice: UInt8(ascii: "3")
            case .blockDevice: UInt8(ascii: "4")
            case .directory: UInt8(ascii: "5")
            case .fifo: UInt8(ascii: "6")
            case .other(let flag): flag
            }
        }

        /// The kind of typeflag `flag`.
        public init(typeflag flag: UInt8) {
            switch flag {
            case 0, UInt8(ascii: "0"): self = .file
            case UInt8(ascii: "1"): self = .hardLink
            case UInt8(ascii: "2"): self = .symbolicLink
            case UInt8(ascii: "3"): self = .characterDevice
            case UInt8(ascii: "4"): self = .blockDevice
            case UInt8(ascii: "5"): self = .directory
            case UInt8(ascii: "6"): self = .fifo
            default: self = .other(flag)
            }
        }

        public var description: String {
            switch self {
            case .file: "regular file"
            case .directory: "directory"
            case .symbolicLink: "symbolic link"
            case .hardLink: "hard link"
            case .characterDevice: "character device"
            case .blockDevice: "block device"
            case .fifo: "FIFO"
            case .other(let flag): "member of unknown type '\(Character(UnicodeScalar(flag)))'"
            }
        }
    }

    /// The path inside the archive, as stored (a directory's trailing `/` removed).
    public var path: String
    /// The member type.
    public var kind: Kind
    /// Permission bits (e.g. 0o644).
    public var mode: UInt32
    /// Modification time, seconds since the epoch.
    public var mtime: Int64
    /// The contents (empty for anything but a regular file).
    public var contents: Data
    /// Target of a link ("" otherwise).
    public var linkTarget: String

    /// The size of the contents, bytes.
    public var size: Int { contents.count }

    /// A member; `contents` only matters for regular files.
    public init(
        path: String, kind: Kind = .file, mode: UInt32 = 0o644, mtime: Int64 = 0, contents: Data = Data(),
        linkTarget: String = ""
    ) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.mtime = mtime
        self.contents = contents
        self.linkTarget = linkTarget
    }

    /// A regular file.
    public static func file(_ path: String, _ contents: Data, mode: UInt32 = 0o644, mtime: Int64 = 0) -> TarMember {
        TarMember(path: path, kind: .file, mode: mode, mtime: mtime, contents: contents)
    }

    /// A directory.
    public static func directory(_ path: String, mode: UInt32 = 0o755, mtime: Int64 = 0) -> TarMember {
        TarMember(path: path, kind: .directory, mode: mode, mtime: mtime)
    }
}

/// Path rules shared by the writer, the reader and the backup format.
public enum ArchivePath {
    /// The longest path extracted, bytes (Linux's PATH_MAX): a longer one could not be written anyway, and
    /// a streaming reader remembers every path it admits.
    public static let maxLength = 4096

    /// The path's components without empty and `.` ones ("./a//b/" → ["a", "b"]).
    public static func components(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
    }

    /// The path in canonical form ("./a//b/" → "a/b"), used to detect duplicates.
    public static func normalized(_ path: String) -> String {
        components(path).joined(separator: "/")
    }

    /// Throws unless `path` is safe to extract below a folder: not empty, relative, no `..`, no NUL, at most
    /// `maxLength` bytes.
    public static func validateRelative(_ path: String) throws {
        guard path.utf8.count <= maxLength else {
            throw ArchiveError(
                .unsafePath, member: String(path.prefix(200)) + "…",
                "member '\(path.prefix(200))…' has a path of \(path.utf8.count) bytes; at most \(maxLength) are extracted")
        }
        guard !path.isEmpty, !components(path).isEmpty else {
            throw ArchiveError(.unsafePath, member: path, "member '\(path)' has an empty path")
        }
        guard !path.hasPrefix("/") else {
            throw ArchiveError(.unsafePath, member: path, "member '\(path)' has an absolute path")
        }
        guard !components(path).contains("..") else {
            throw ArchiveError(.unsafePath, member: path, "member '\(path)' has a '..' component that could escape the folder")
        }
        guard !path.utf8.contains(0) else {
            throw ArchiveError(.unsafePath, member: path, "member '\(path)' has a NUL byte in its path")
        }
    }
}
