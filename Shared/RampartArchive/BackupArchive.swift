import Foundation

/// A device backup (docs/rules.md#archives): a ustar archive whose first member is `manifest.json`, followed by the
/// configuration tree's files in path order, each listed in the manifest with its size and SHA-256.
public enum BackupArchive {
    /// A file of a backup: its path (relative to the configuration folder) and contents.
    public struct File: Sendable, Equatable {
        /// Path inside the archive, relative ("pki/web.key").
        public var path: String
        /// The contents.
        public var contents: Data

        /// File `path` holding `contents`.
        public init(path: String, contents: Data) {
            self.path = path
            self.contents = contents
        }
    }

    /// An archive read back and verified.
    public struct Contents: Sendable, Equatable {
        /// The manifest.
        public var manifest: BackupManifest
        /// manifest.json exactly as stored.
        public var manifestJSON: Data
        /// The files, in archive order (manifest excluded).
        public var files: [File]

        /// The contents of the file at `path`, if present.
        public subscript(path: String) -> Data? {
            files.first { $0.path == path }?.contents
        }
    }

    /// Permission bits of every member: backups hold decrypted private keys (B12).
    public static let memberMode: UInt32 = 0o600

    /// The archive of `files` with `manifest` first; `manifest.files` is replaced by the files' paths,
    /// sizes and SHA-256s in archive (path) order. Every member's mtime is the manifest's `createdAt`,
    /// so the same input always gives the same bytes. Throws on an unsafe or duplicate path.
    public static func build(manifest: BackupManifest, files: [File]) throws -> (archive: Data, manifest: BackupManifest) {
        let sorted = files.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        var seen = Set<String>()
        for file in sorted {
            try ArchivePath.validateRelative(file.path)
            let normalized = ArchivePath.normalized(file.path)
            guard normalized == file.path else {
                throw ArchiveError(.unsafePath, member: file.path, "member '\(file.path)' is not in canonical form ('\(normalized)')")
            }
            guard normalized != BackupManifest.fileName else {
                throw ArchiveError(.duplicate, member: file.path, "a file may not be called manifest.json: that name is the manifest's")
            }
            guard seen.insert(normalized).inserted else {
                throw ArchiveError(.duplicate, member: file.path, "file '\(file.path)' is given twice")
            }
        }
        var manifest = manifest
        manifest.files = sorted.map {
            BackupManifest.FileEntry(path: $0.path, size: $0.contents.count, sha256: sha256Hex($0.contents))
        }
        let mtime = Int64(manifest.createdDate?.timeIntervalSince1970 ?? 0)
        var writer = TarWriter()
        try writer.addFile(BackupManifest.fileName, contents: try manifest.encoded(), mode: memberMode, mtime: mtime)
        for file in sorted {
            try writer.addFile(file.path, contents: file.contents, mode: memberMode, mtime: mtime)
        }
        return (try writer.finish(), manifest)
    }

    /// The archive of `files` (path → contents) with `manifest` first; see `build(manifest:files:)`.
    public static func build(manifest: BackupManifest, files: [String: Data]) throws -> Data {
        try build(manifest: manifest, files: files.map { File(path: $0.key, contents: $0.value) }).archive
    }

    /// Reads and verifies a backup (see `read(_:)`): its manifest and its files by path.
    public static func open(_ data: Data) throws -> (manifest: BackupManifest, files: [String: Data]) {
        let contents = try read(data)
        return (contents.manifest, Dictionary(uniqueKeysWithValues: contents.files.map { ($0.path, $0.contents) }))
    }

    /// Reads and verifies a backup: the archive is safe to extract (`TarReader.safeMembers`),
    /// manifest.json is its first member and of a known format version, every file member is listed with
    /// the same size and SHA-256, and nothing listed is missing. Directory members are allowed and ignored.
    /// Throws `ArchiveError` naming the member that differs.
    public static func read(_ data: Data) throws -> Contents {
        let members = try TarReader(data: data).safeMembers()
        guard let first = members.first else {
            throw ArchiveError(.manifest, member: BackupManifest.fileName, "the archive is empty: it has no manifest.json")
        }
        guard ArchivePath.normalized(first.path) == BackupManifest.fileName, first.kind == .file else {
            throw ArchiveError(
                .manifest, member: first.path,
                "the first member is '\(first.path)', not manifest.json: this is not a Rampart backup")
        }
        let manifest = try BackupManifest.decode(first.contents)
        guard manifest.formatVersion == BackupManifest.currentFormatVersion else {
            throw ArchiveError(
                .manifest, member: BackupManifest.fileName,
                "manifest.json has format version \(manifest.formatVersion); this program reads version \(BackupManifest.currentFormatVersion)")
        }
        var expected: [String: BackupManifest.FileEntry] = [:]
        for entry in manifest.files {
            guard expected.updateValue(entry, forKey: ArchivePath.normalized(entry.path)) == nil else {
                throw ArchiveError(.manifest, member: entry.path, "manifest.json lists '\(entry.path)' twice")
            }
        }
        var files: [File] = []
        for member in members.dropFirst() where member.kind == .file {
            let path = ArchivePath.normalized(member.path)
            guard let entry = expected.removeValue(forKey: path) else {
                throw ArchiveError(
                    .unexpectedMember, member: member.path, "member '\(member.path)' is in the archive but not in manifest.json")
            }
            guard entry.size == member.size else {
                throw ArchiveError(
                    .hashMismatch, member: member.path,
                    "member '\(member.path)' has \(member.size) bytes; manifest.json says \(entry.size)")
            }
            let digest = sha256Hex(member.contents)
            guard digest == entry.sha256.lowercased() else {
                throw ArchiveError(
                    .hashMismatch, member: member.path,
                    "member '\(member.path)' does not match its SHA-256 in manifest.json: it was altered or damaged")
            }
            files.append(File(path: path, contents: member.contents))
        }
        if let missing = expected.keys.sorted().first {
            throw ArchiveError(
                .missingMember, member: missing, "member '\(missing)' is listed in manifest.json but not in the archive")
        }
        return Contents(manifest: manifest, manifestJSON: first.contents, files: files)
    }
}
