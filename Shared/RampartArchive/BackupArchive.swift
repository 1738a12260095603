import Crypto
import Foundation
import RampartBasics

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
    /// The largest manifest.json read, bytes (4 MiB: tens of thousands of files). It is decoded in memory.
    public static let maxManifestSize = 4 << 20
    /// The most directory members a backup may hold (`BackupArchive.build` writes none; an archive made
    /// with another tool may have some): every path admitted is remembered while an archive streams.
    public static let maxDirectories = 4096

    /// A file of a backup given by its size and SHA-256, its contents handed over a piece at a time when
    /// the archive is written (from a file on disk, for instance), so that no file is held whole.
    public struct StreamedFile {
        /// Path inside the archive, relative ("pki/web.key").
        public var path: String
        /// Its size in bytes.
        public var size: Int
        /// Its SHA-256, lower-case hex.
        public var sha256: String
        /// Hands the contents to `write`, a piece at a time.
        public var contents: (_ write: (Data) throws -> Void) throws -> Void

        /// File `path` of `size` bytes and SHA-256 `sha256`, produced by `contents`.
        public init(
            path: String, size: Int, sha256: String, contents: @escaping (_ write: (Data) throws -> Void) throws -> Void
        ) {
            self.path = path
            self.size = size
            self.sha256 = sha256
            self.contents = contents
        }

        /// A file held in memory.
        public init(_ file: File) {
            let data = file.contents
            self.init(path: file.path, size: data.count, sha256: sha256Hex(data)) { write in try write(data) }
        }
    }

    /// The archive of `files` with `manifest` first; `manifest.files` is replaced by the files' paths,
    /// sizes and SHA-256s in archive (path) order. Every member's mtime is the manifest's `createdAt`,
    /// so the same input always gives the same bytes. Throws on an unsafe or duplicate path.
    public static func build(manifest: BackupManifest, files: [File]) throws -> (archive: Data, manifest: BackupManifest) {
        var archive = Data()
        let written = try write(manifest: manifest, files: files.map(StreamedFile.init)) { archive.append($0) }
        return (archive, written)
    }

    /// The archive of `files` (path → contents) with `manifest` first; see `build(manifest:files:)`.
    public static func build(manifest: BackupManifest, files: [String: Data]) throws -> Data {
        try build(manifest: manifest, files: files.map { File(path: $0.key, contents: $0.value) }).archive
    }

    /// Writes the archive `build` makes to `sink`, a piece at a time, the files' contents streamed from
    /// their producers; returns the manifest written. A file whose contents differ from its announced
    /// size or SHA-256 (it changed since it was hashed) stops the writing with `ArchiveError(.hashMismatch)`:
    /// what `sink` was given is then not a backup.
    public static func write(
        manifest: BackupManifest, files: [StreamedFile], to sink: @escaping (Data) throws -> Void
    ) throws -> BackupManifest {
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
        manifest.files = sorted.map { BackupManifest.FileEntry(path: $0.path, size: $0.size, sha256: $0.sha256) }
        let mtime = Int64(manifest.createdDate?.timeIntervalSince1970 ?? 0)
        var writer = TarWriter(sink: sink)
        try writer.addFile(BackupManifest.fileName, contents: try manifest.encoded(), mode: memberMode, mtime: mtime)
        for file in sorted {
            var hash = SHA256()
            try writer.addFile(file.path, size: file.size, mode: memberMode, mtime: mtime) { write in
                try file.contents { piece in
                    hash.update(data: piece)
                    try write(piece)
                }
            }
            guard hex(hash.finalize()) == file.sha256.lowercased() else {
                throw ArchiveError(
                    .hashMismatch, member: file.path,
                    "file '\(file.path)' changed while the archive was written: its contents no longer match its SHA-256")
            }
        }
        _ = try writer.finish()
        return manifest
    }

    /// Reads and verifies a backup (see `read(_:)`): its manifest and its files by path.
    public static func open(_ data: Data) throws -> (manifest: BackupManifest, files: [String: Data]) {
        let contents = try read(data)
        return (contents.manifest, Dictionary(uniqueKeysWithValues: contents.files.map { ($0.path, $0.contents) }))
    }

    /// Reads and verifies a backup held in memory (`StreamReader` over it, every file's contents
    /// collected): the archive is safe to extract (`ExtractionCheck`), manifest.json is its first member
    /// and of a known format version, every file member is listed with the same size and SHA-256, and
    /// nothing listed is missing. Directory members are allowed and ignored. Throws `ArchiveError` naming
    /// the member that differs.
    public static func read(_ data: Data) throws -> Contents {
        var reader = try StreamReader(DataSource(data))
        var files: [File] = []
        while let entry = try reader.nextFile() {
            var contents = Data()
            contents.reserveCapacity(entry.size)
            while let piece = try reader.readChunk() { contents.append(piece) }
            files.append(File(path: entry.path, contents: contents))
        }
        _ = try reader.finish()
        return Contents(manifest: reader.manifest, manifestJSON: reader.manifestJSON, files: files)
    }

    /// What reading a whole backup established: the manifest, the files in archive order (each verified
    /// against the manifest), and the SHA-256 and size of the whole archive.
    public struct Listing: Sendable, Equatable {
        /// The manifest.
        public var manifest: BackupManifest
        /// manifest.json exactly as stored.
        public var manifestJSON: Data
        /// The files in archive order (manifest excluded): canonical path, size and SHA-256.
        public var files: [BackupManifest.FileEntry]
        /// SHA-256 of the whole archive (everything after the end-of-archive marker included), lower-case hex.
        public var archiveSHA256: String
        /// The whole archive's size, bytes.
        public var byteCount: Int
    }

    /// Reads and verifies a backup from a source, one file at a time, holding at most a buffer of
    /// contents (`TarStreamReader.chunkSize`) besides the manifest and the paths seen: the same checks as
    /// `read(_:)`, each made as soon as the member it concerns is reached. `init` reads manifest.json;
    /// `nextFile()` gives each file member; `readChunk()` its contents, a piece at a time, and throws
    /// `hashMismatch` after the last piece when they do not match the manifest; `finish()` reads the rest,
    /// checks that nothing listed is missing and returns the `Listing`. Contents not read are hashed all
    /// the same (the next call reads through them). A member that must not be extracted is refused before
    /// it is returned, so a caller writing files as they come never writes it; it may have written earlier
    /// files of an archive that is refused later, and must then remove them.
    public struct StreamReader<Source: ArchiveByteSource> {
        /// The manifest.
        public let manifest: BackupManifest
        /// manifest.json exactly as stored.
        public let manifestJSON: Data

        private var tar: TarStreamReader<HashingSource<Source>>
        private var check: ExtractionCheck
        private var expected: [String: BackupManifest.FileEntry]
        private var files: [BackupManifest.FileEntry] = []
        private var directories = 0
        private var current: (entry: BackupManifest.FileEntry, member: String, hash: SHA256)?
        private var atEnd = false

        /// Reads manifest.json: the archive's first member, a regular file of at most
        /// `BackupArchive.maxManifestSize` bytes, of a known format version, listing no path twice.
        public init(_ source: Source) throws {
            var tar = TarStreamReader(HashingSource(source))
            var check = ExtractionCheck()
            var expected: [String: BackupManifest.FileEntry] = [:]
            guard let first = try tar.next() else {
                throw ArchiveError(.manifest, member: BackupManifest.fileName, "the archive is empty: it has no manifest.json")
            }
            try check.admit(first)
            guard ArchivePath.normalized(first.path) == BackupManifest.fileName, first.kind == .file else {
                throw ArchiveError(
                    .manifest, member: first.path,
                    "the first member is '\(first.path)', not manifest.json: this is not a Rampart backup")
            }
            guard first.size <= BackupArchive.maxManifestSize else {
                throw ArchiveError(
                    .tooLarge, member: first.path,
                    "manifest.json is \(first.size) bytes; at most \(BackupArchive.maxManifestSize) are read")
            }
            var json = Data()
            while let piece = try tar.readContents() { json.append(piece) }
            let manifest = try BackupManifest.decode(json)
            guard manifest.formatVersion == BackupManifest.currentFormatVersion else {
                throw ArchiveError(
                    .manifest, member: BackupManifest.fileName,
                    "manifest.json has format version \(manifest.formatVersion); this program reads version \(BackupManifest.currentFormatVersion)")
            }
            for entry in manifest.files {
                guard expected.updateValue(entry, forKey: ArchivePath.normalized(entry.path)) == nil else {
                    throw ArchiveError(.manifest, member: entry.path, "manifest.json lists '\(entry.path)' twice")
                }
            }
            self.tar = tar
            self.check = check
            self.expected = expected
            self.manifest = manifest
            manifestJSON = json
        }

        /// The next file member (its canonical path, and its size and SHA-256 as the manifest lists them),
        /// or nil after the last. Reads through the rest of the previous file first, verifying it. Throws
        /// `ArchiveError` for a member that must not be extracted, one that is not in the manifest or has
        /// another size, too many directories, and any damage to the tar itself.
        public mutating func nextFile() throws -> BackupManifest.FileEntry? {
            if current != nil { while try readChunk() != nil {} }
            guard !atEnd else { return nil }
            while let member = try tar.next() {
                try check.admit(member)
                guard member.kind == .file else {
                    directories += 1
                    guard directories <= BackupArchive.maxDirectories else {
                        throw ArchiveError(
                            .tooLarge, member: member.path,
                            "the archive holds more than \(BackupArchive.maxDirectories) directory members")
                    }
                    continue
                }
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
                let listed = BackupManifest.FileEntry(path: path, size: entry.size, sha256: entry.sha256.lowercased())
                current = (listed, member.path, SHA256())
                return listed
            }
            atEnd = true
            return nil
        }

        /// The next piece (at most `maxCount` bytes) of the file `nextFile()` returned last, or nil once it
        /// has all been read and found to match its SHA-256 (`ArchiveError(.hashMismatch)` otherwise).
        public mutating func readChunk(maxCount: Int = TarStreamReader<Source>.chunkSize) throws -> Data? {
            guard var reading = current else { return nil }
            if let piece = try tar.readContents(maxCount: maxCount) {
                reading.hash.update(data: piece)
                current = reading
                return piece
            }
            current = nil
            guard hex(reading.hash.finalize()) == reading.entry.sha256 else {
                throw ArchiveError(
                    .hashMismatch, member: reading.member,
                    "member '\(reading.member)' does not match its SHA-256 in manifest.json: it was altered or damaged")
            }
            files.append(reading.entry)
            return nil
        }

        /// Reads (and verifies) every file not read yet and what follows the end-of-archive marker, checks
        /// that every file the manifest lists was there, and returns what was read.
        public mutating func finish() throws -> Listing {
            while try nextFile() != nil {}
            if let missing = expected.keys.sorted().first {
                throw ArchiveError(
                    .missingMember, member: missing, "member '\(missing)' is listed in manifest.json but not in the archive")
            }
            try tar.withSource { try $0.readToEnd() }
            let (digest, count) = tar.withSource { ($0.digest, $0.count) }
            return Listing(
                manifest: manifest, manifestJSON: manifestJSON, files: files, archiveSHA256: digest, byteCount: count)
        }
    }
}

/// Lower-case hex of a digest.
func hex(_ digest: some Sequence<UInt8>) -> String {
    digest.hexString
}
