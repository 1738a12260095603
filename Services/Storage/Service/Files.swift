import Foundation
import RampartBus

#if canImport(Glibc)
import Glibc
import RampartRPC
#endif

/// A failed filesystem operation: disk full is `RESOURCE_EXHAUSTED`, anything else `INTERNAL`.
struct FileIOError: Error, RPCErrorConvertible, CustomStringConvertible {
    var operation: String
    var path: String
    var code: Int32

    var description: String { "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))" }

    var isNoSpace: Bool { code == ENOSPC || code == EDQUOT }

    var rpcError: RPCError {
        if isNoSpace {
            return RPCError(.resourceExhausted, "the storage folder is full; free space and retry", cause: self)
        }
        return RPCError(.internal, "storage I/O error (\(operation): \(String(cString: strerror(code))))", cause: self)
    }
}

/// An open file descriptor with whole-buffer positional reads and writes; close it with `close()`.
struct FileHandleFD {
    let fd: Int32
    let path: String

    /// Opens `path` with `flags` (O_CLOEXEC added) and `mode` for created files.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws -> FileHandleFD {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileIOError(operation: "open", path: path, code: errno) }
        return FileHandleFD(fd: fd, path: path)
    }

    func close() { _ = Glibc.close(fd) }

    var size: UInt64 {
        get throws {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw FileIOError(operation: "stat", path: path, code: errno) }
            return UInt64(info.st_size)
        }
    }

    /// Identity of the file's current content, for caches: inode, size and modification time.
    var identity: String {
        get throws {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw FileIOError(operation: "stat", path: path, code: errno) }
            return "\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }
    }

    /// Writes all of `data` at `offset`.
    func write(_ data: Data, at offset: UInt64) throws {
        try data.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileIOError(operation: "write", path: path, code: errno)
                }
                done += n
            }
        }
    }

    /// Reads up to `count` bytes at `offset` (fewer only at the end of the file).
    func read(_ count: Int, at offset: UInt64) throws -> Data {
        guard count > 0 else { return Data() }
        // Read into memory that is not zeroed first (Data(count:) would clear it only to overwrite it).
        guard let memory = malloc(count) else { throw FileIOError(operation: "read", path: path, code: ENOMEM) }
        var done = 0
        while done < count {
            let n = pread(fd, memory + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                free(memory)
                throw FileIOError(operation: "read", path: path, code: code)
            }
            if n == 0 { break }
            done += n
        }
        return Data(bytesNoCopy: memory, count: done, deallocator: .free)
    }

    /// Tells the kernel the file will be read from start to end, so it reads further ahead. Advice
    /// only: a kernel that ignores it changes nothing.
    func adviseSequential() {
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_SEQUENTIAL))
    }

    func truncate(to length: UInt64) throws {
        guard ftruncate(fd, off_t(length)) == 0 else { throw FileIOError(operation: "truncate", path: path, code: errno) }
    }

    func sync() throws {
        guard fsync(fd) == 0 else { throw FileIOError(operation: "fsync", path: path, code: errno) }
    }
}

/// Filesystem steps of the object store.
enum Files {
    /// Creates `path` and its parents (mode 0700); existing folders are fine.
    static func makeDirectory(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o700) != 0 && errno != EEXIST {
                throw FileIOError(operation: "mkdir", path: current, code: errno)
            }
        }
    }

    /// Renames atomically.
    static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw FileIOError(operation: "rename", path: from, code: errno) }
    }

    /// Removes `path`; a missing file is fine.
    static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Whether `path` exists.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// Flushes a directory's entries (after a rename into it).
    static func syncDirectory(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(operation: "open", path: path, code: errno) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw FileIOError(operation: "fsync", path: path, code: errno) }
    }
}
