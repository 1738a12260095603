import Crypto
import Foundation
import RampartBasics

#if canImport(Glibc)
    import Glibc
#endif

/// Where a streaming reader (`TarStreamReader`, `BackupArchive.StreamReader`) takes its bytes from, a
/// piece at a time, so that an archive of any size is read with a buffer of a fixed size
/// (docs/rules.md#archives).
public protocol ArchiveByteSource {
    /// At most `count` bytes from where the previous read ended: fewer only at the end of the data, none
    /// after it.
    mutating func read(upTo count: Int) throws -> Data
    /// How many bytes are left, when that is known (a file, data in memory); nil for a stream.
    var remainingCount: Int? { get }
}

/// Bytes held in memory, read a piece at a time (each piece a copy of at most the size asked for).
public struct DataSource: ArchiveByteSource {
    private let data: Data
    private var position: Int

    /// A source of `data`, from its start.
    public init(_ data: Data) {
        self.data = data
        position = data.startIndex
    }

    public mutating func read(upTo count: Int) throws -> Data {
        let end = position + min(count, data.endIndex - position)
        defer { position = end }
        return Data(data[position..<end])
    }

    public var remainingCount: Int? { data.endIndex - position }
}

/// A regular file opened read-only for archives to be read from, as many times as needed: each read
/// says where it starts (`pread`), so one open file serves several readers. A link is not followed, and
/// anything but a regular file is refused. The size is taken when the file is opened; bytes added later
/// are not read, and a file cut shorter reads as a truncated archive. Closed when the value goes.
public final class ArchiveFile: Sendable {
    /// The path it was opened at.
    public let path: String
    /// Its size when it was opened, bytes.
    public let size: Int
    private let descriptor: Int32

    /// Opens `path`; throws `ArchiveError(.unreadable)` when it cannot be opened, is a link or not a
    /// regular file, and `.tooLarge` when it holds more than `maxSize` bytes.
    public init(path: String, maxSize: Int? = nil) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else {
            throw ArchiveError(.unreadable, "\(path) cannot be opened: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw ArchiveError(.unreadable, "\(path) is not a regular file")
        }
        if let maxSize, Int(info.st_size) > maxSize {
            close(descriptor)
            throw ArchiveError(.tooLarge, "\(path) is \(info.st_size) bytes, over the limit of \(maxSize) bytes")
        }
        self.path = path
        size = Int(info.st_size)
        self.descriptor = descriptor
    }

    /// Takes `descriptor` (open for reading, and closed with this value) as the file at `path`.
    init(adopting descriptor: Int32, path: String) throws {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            close(descriptor)
            throw ArchiveError(.unreadable, "\(path) cannot be read: \(String(cString: strerror(errno)))")
        }
        self.path = path
        size = Int(info.st_size)
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Up to `count` bytes at `offset` (fewer only at the end of the file as opened).
    public func read(at offset: Int, upTo count: Int) throws -> Data {
        let wanted = max(0, min(count, size - offset))
        guard wanted > 0 else { return Data() }
        var data = Data(count: wanted)
        let got = try data.withUnsafeMutableBytes { buffer -> Int in
            var done = 0
            while done < wanted {
                let n = pread(descriptor, buffer.baseAddress! + done, wanted - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ArchiveError(.unreadable, "\(path) cannot be read: \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }  // cut shorter since it was opened
                done += n
            }
            return done
        }
        if got < wanted { data.count = got }
        return data
    }

    /// A source reading the file from its start.
    public func source() -> Source { Source(file: self) }

    /// A reader's position in an `ArchiveFile`.
    public struct Source: ArchiveByteSource, Sendable {
        /// The file.
        public let file: ArchiveFile
        /// Bytes read so far.
        public private(set) var offset = 0

        public mutating func read(upTo count: Int) throws -> Data {
            let data = try file.read(at: offset, upTo: count)
            offset += data.count
            return data
        }

        public var remainingCount: Int? { max(0, file.size - offset) }
    }
}

/// Bytes an archive can be read from, from the start, as often as needed: an open file or data in
/// memory. A restore verifies an archive once and reads it again to stage it.
public enum ArchiveBytes: Sendable {
    /// An open file (streamed, a buffer at a time).
    case file(ArchiveFile)
    /// Data in memory (tests, small archives).
    case data(Data)

    /// How many bytes.
    public var count: Int {
        switch self {
        case .file(let file): file.size
        case .data(let data): data.count
        }
    }

    /// A source reading them from the start.
    public func source() -> Source { Source(bytes: self) }

    /// The first `count` bytes (fewer when there are not that many).
    public func prefix(_ count: Int) throws -> Data {
        var source = source()
        return try source.read(upTo: count)
    }

    /// A reader's position in `ArchiveBytes`.
    public struct Source: ArchiveByteSource, Sendable {
        private var file: ArchiveFile.Source?
        private var data: Data
        private var position = 0

        init(bytes: ArchiveBytes) {
            switch bytes {
            case .file(let file):
                self.file = file.source()
                data = Data()
            case .data(let data):
                self.data = data
            }
        }

        public mutating func read(upTo count: Int) throws -> Data {
            if file != nil { return try file!.read(upTo: count) }
            let start = data.startIndex + position
            let end = start + min(count, data.endIndex - start)
            position = end - data.startIndex
            return Data(data[start..<end])
        }

        public var remainingCount: Int? {
            if let file { return file.remainingCount }
            return data.count - position
        }
    }
}

/// A source that hashes (SHA-256) and counts every byte read through it.
public struct HashingSource<Base: ArchiveByteSource>: ArchiveByteSource {
    /// The source read.
    public private(set) var base: Base
    /// Bytes read so far.
    public private(set) var count = 0
    private var hash = SHA256()

    /// Hashes what is read from `base`.
    public init(_ base: Base) { self.base = base }

    public mutating func read(upTo count: Int) throws -> Data {
        let data = try base.read(upTo: count)
        hash.update(data: data)
        self.count += data.count
        return data
    }

    public var remainingCount: Int? { base.remainingCount }

    /// Reads what is left to the end (a buffer at a time), so the digest covers everything.
    public mutating func readToEnd(chunkSize: Int = TarStreamReader<DataSource>.chunkSize) throws {
        while !(try read(upTo: chunkSize)).isEmpty {}
    }

    /// Lower-case hex SHA-256 of everything read so far.
    public var digest: String { hash.finalize().hexString }
}

/// An archive written a piece at a time to a file without a name, then read back as an `ArchiveFile`:
/// created in `directory` with mode 0600 and unlinked at once, so no path ever shows it (a backup holds
/// decrypted private keys, B12), nothing is left behind by a crash, and its space is freed when the last
/// reader is gone. What is written is counted and hashed (SHA-256) on the way, through a buffer of 1 MiB.
public final class ArchiveSpool {
    private let path: String
    private var descriptor: Int32
    private var buffer = Data()
    private var hash = SHA256()
    /// Bytes written so far.
    public private(set) var count = 0

    /// A new spool in `directory`.
    public init(directory: String) throws {
        path = directory + "/.spool-" + UUID().uuidString.lowercased() + ".tar"
        descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ArchiveError(
                .unreadable, "cannot create a spool file in \(directory): \(String(cString: strerror(errno)))")
        }
        unlink(path)
        buffer.reserveCapacity(1 << 20)
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Appends `data`.
    public func write(_ data: Data) throws {
        precondition(descriptor >= 0, "ArchiveSpool used after finish()")
        hash.update(data: data)
        count += data.count
        buffer.append(data)
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Ends the writing: the file as written, and its SHA-256 (lower-case hex).
    public func finish() throws -> (file: ArchiveFile, sha256: String) {
        try flush()
        let file = try ArchiveFile(adopting: descriptor, path: path)
        descriptor = -1
        return (file, hash.finalize().hexString)
    }

    private func flush() throws {
        try buffer.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw ArchiveError(.unreadable, "cannot write a spool file: \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
