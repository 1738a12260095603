import Foundation
import RampartArchive

/// The configuration tree of a device backup (`manifest.json` is the backup's description, not
/// configuration, and is left out), read from its archive and verified as it is read.
public enum ConfigTree {
    /// The largest file compared line by line, bytes; a larger one is compared by its SHA-256 alone.
    public static let maxFileSize = 64 << 20

    /// Hands each configuration file of the backup archive in `source` to `body` (path, contents), one at
    /// a time; a file larger than `maxFileSize` is handed over as nil contents with its SHA-256.
    public static func forEachFile<Source: ArchiveByteSource>(
        in source: Source, _ body: (_ path: String, _ contents: Data?, _ sha256: String) throws -> Void
    ) throws {
        var reader = try BackupArchive.StreamReader(source)
        while let entry = try reader.nextFile() {
            if entry.size > maxFileSize {
                while try reader.readChunk() != nil {}
                try body(entry.path, nil, entry.sha256)
                continue
            }
            var contents = Data()
            contents.reserveCapacity(entry.size)
            while let piece = try reader.readChunk() { contents.append(piece) }
            try body(entry.path, contents, entry.sha256)
        }
        _ = try reader.finish()
    }

    /// The configuration files of the backup archive `data`, path → contents (a file larger than
    /// `maxFileSize` as its SHA-256, which compares it without showing lines).
    public static func files(ofArchive data: Data) throws -> [String: Data] {
        var files: [String: Data] = [:]
        try forEachFile(in: DataSource(data)) { path, contents, sha256 in
            files[path] = contents ?? Data("(\(sha256), too large to compare line by line)".utf8 + [0])
        }
        return files
    }

    /// The fingerprint of the backup archive in `source`, read a file at a time.
    public static func fingerprint<Source: ArchiveByteSource>(ofArchive source: Source) throws -> ConfigFingerprint {
        var fingerprint = ConfigFingerprint()
        try forEachFile(in: source) { path, contents, sha256 in
            fingerprint.files[path] = contents.map { ConfigFingerprint.digest(path: path, contents: $0) } ?? sha256
        }
        return fingerprint
    }
}
