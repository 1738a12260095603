/// Why an archive, a bundle or a backup file name was refused: a kind, the member concerned (when there is
/// one) and a message for people that names it.
public struct ArchiveError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What kind of problem it is; tests and callers match on it, people read `message`.
    public enum Code: String, Sendable, Equatable {
        /// The data ends before a header, a member's contents or the end-of-archive marker.
        case truncated
        /// A header's checksum does not match its bytes.
        case badChecksum
        /// A header field cannot be read (bad octal number, unknown magic, ...).
        case badHeader
        /// A member's path is empty, absolute, holds `..`, or cannot be stored in a ustar header.
        case unsafePath
        /// A symbolic or hard link (refused for extraction).
        case link
        /// A character or block device, a FIFO or an unknown member type (refused for extraction).
        case specialFile
        /// Two members with the same path, or a member below a regular file.
        case duplicate
        /// manifest.json is missing, not first, unreadable, or of an unsupported format version.
        case manifest
        /// A member's SHA-256 or size differs from the manifest.
        case hashMismatch
        /// A member listed in the manifest is not in the archive.
        case missingMember
        /// A member is in the archive but not in the manifest.
        case unexpectedMember
        /// Decompressed data would exceed the allowed size (zip-bomb guard), or a member is too large.
        case tooLarge
        /// zlib refused the data (not gzip, corrupt, truncated, trailing garbage).
        case compression
        /// A bundle holds no file for the node asked for.
        case notFound
        /// The archive's file cannot be opened, read or written, or is not a regular file.
        case unreadable
        /// A backup file name does not follow `BackupNaming` (docs/rules.md#archives).
        case badName
    }

    /// The kind of problem.
    public var code: Code
    /// The member (path inside the archive) concerned, when there is one.
    public var member: String?
    /// What is wrong, for a person; names the member.
    public var message: String

    /// An error of kind `code` about `member`.
    public init(_ code: Code, member: String? = nil, _ message: String) {
        self.code = code
        self.member = member
        self.message = message
    }

    public var description: String { message }
}
