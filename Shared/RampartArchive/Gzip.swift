import CZlib
import Foundation

/// gzip (RFC 1952) through the system zlib. Compression is deterministic (no name, mtime 0);
/// decompression refuses output past a limit, so a small hostile input cannot fill memory.
public enum Gzip {
    /// The default limit of `decompress`: 4 GiB.
    public static let defaultMaxSize = 4 << 30

    /// `data` gzip-compressed at `level` (0 to 9; default 6).
    public static func compress(_ data: Data, level: Int32 = Z_DEFAULT_COMPRESSION) -> Data {
        var stream = z_stream()
        // windowBits 15 + 16: a gzip wrapper instead of zlib's.
        let status = deflateInit2_(
            &stream, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "deflateInit2 failed (\(status)): out of memory")
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(data.count))) + 64
        var output = Data(count: bound)
        let produced: Int = data.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                stream.next_in = UnsafeMutablePointer(
                    mutating: input.bindMemory(to: Bytef.self).baseAddress ?? UnsafePointer(bitPattern: 1))
                stream.avail_in = uInt(input.count)
                stream.next_out = out.bindMemory(to: Bytef.self).baseAddress
                stream.avail_out = uInt(out.count)
                let result = deflate(&stream, Z_FINISH)
                precondition(result == Z_STREAM_END, "deflate did not finish within deflateBound (\(result))")
                return out.count - Int(stream.avail_out)
            }
        }
        output.count = produced
        return output
    }

    /// The data inside gzip (or zlib) `data`. Throws `ArchiveError.tooLarge` as soon as the output would
    /// pass `maxSize` bytes, and `.compression` for corrupt, truncated or trailing data.
    public static func decompress(_ data: Data, maxSize: Int = defaultMaxSize) throws -> Data {
        var stream = z_stream()
        // windowBits 15 + 32: gzip or zlib, detected from the header.
        guard inflateInit2_(&stream, 47, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ArchiveError(.compression, "zlib could not start inflating (out of memory)")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        let chunkSize = 256 * 1024
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        try data.withUnsafeBytes { input in
            stream.next_in = UnsafeMutablePointer(
                mutating: input.bindMemory(to: Bytef.self).baseAddress ?? UnsafePointer(bitPattern: 1))
            stream.avail_in = uInt(input.count)
            while true {
                let (result, produced) = chunk.withUnsafeMutableBufferPointer { buffer -> (Int32, Int) in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = uInt(chunkSize)
                    let result = inflate(&stream, Z_NO_FLUSH)
                    return (result, chunkSize - Int(stream.avail_out))
                }
                guard output.count + produced <= maxSize else {
                    throw ArchiveError(
                        .tooLarge, "the compressed data expands past the limit of \(maxSize) bytes; refused")
                }
                output.append(contentsOf: chunk[0..<produced])
                switch result {
                case Z_STREAM_END:
                    guard stream.avail_in == 0 else {
                        throw ArchiveError(.compression, "unexpected data after the end of the gzip stream")
                    }
                    return
                case Z_OK:
                    continue
                case Z_BUF_ERROR where stream.avail_in == 0:
                    throw ArchiveError(.compression, "the gzip data is truncated")
                case Z_BUF_ERROR:
                    continue
                default:
                    let reason = stream.msg.map { String(cString: $0) } ?? "error \(result)"
                    throw ArchiveError(.compression, "the data is not valid gzip: \(reason)")
                }
            }
        }
        return output
    }
}

extension Gzip {
    /// A zlib stream on the heap: zlib keeps a pointer back to it, so it must not move between calls.
    final class Stream {
        let pointer = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        let buffer: UnsafeMutablePointer<UInt8>
        let bufferSize: Int
        let inflating: Bool

        init(inflating: Bool, level: Int32, bufferSize: Int) throws {
            pointer.initialize(to: z_stream())
            self.inflating = inflating
            self.bufferSize = bufferSize
            buffer = .allocate(capacity: bufferSize)
            let status =
                inflating
                ? inflateInit2_(pointer, 47, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
                : deflateInit2_(
                    pointer, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
                    Int32(MemoryLayout<z_stream>.size))
            guard status == Z_OK else {
                buffer.deallocate()
                pointer.deallocate()
                throw ArchiveError(.compression, "zlib could not start (out of memory)")
            }
        }

        deinit {
            if inflating { inflateEnd(pointer) } else { deflateEnd(pointer) }
            buffer.deallocate()
            pointer.deallocate()
        }
    }

    /// gzip data decompressed as it is read, from another source: a buffer of input and one of output at a
    /// time, whatever the sizes. The same refusals as `decompress`: `tooLarge` as soon as the output would
    /// pass `maxSize` bytes, `compression` for corrupt, truncated or trailing data.
    public struct InflatingSource<Base: ArchiveByteSource>: ArchiveByteSource {
        private var base: Base
        private let stream: Stream
        private let maxSize: Int
        private var produced = 0
        private var ended = false
        private var baseEnded = false

        /// The decompressed contents of the gzip (or zlib) data read from `base`.
        public init(_ base: Base, maxSize: Int = defaultMaxSize) throws {
            self.base = base
            self.maxSize = maxSize
            stream = try Stream(inflating: true, level: 0, bufferSize: 256 * 1024)
        }

        public var remainingCount: Int? { nil }

        public mutating func read(upTo count: Int) throws -> Data {
            guard !ended, count > 0 else { return Data() }
            var output = Data(count: count)
            var filled = 0
            let z = stream.pointer
            while filled < count, !ended {
                if z.pointee.avail_in == 0, !baseEnded {
                    let input = try base.read(upTo: stream.bufferSize)
                    if input.isEmpty {
                        baseEnded = true
                    } else {
                        input.copyBytes(to: stream.buffer, count: input.count)
                        z.pointee.next_in = stream.buffer
                        z.pointee.avail_in = uInt(input.count)
                    }
                }
                let (result, wrote) = output.withUnsafeMutableBytes { out -> (Int32, Int) in
                    let start = out.bindMemory(to: Bytef.self).baseAddress! + filled
                    z.pointee.next_out = start
                    z.pointee.avail_out = uInt(count - filled)
                    let result = inflate(z, Z_NO_FLUSH)
                    return (result, count - filled - Int(z.pointee.avail_out))
                }
                filled += wrote
                produced += wrote
                guard produced <= maxSize else {
                    throw ArchiveError(
                        .tooLarge, "the compressed data expands past the limit of \(maxSize) bytes; refused")
                }
                switch result {
                case Z_STREAM_END:
                    if z.pointee.avail_in == 0, !baseEnded {
                        let more = try base.read(upTo: 1)
                        if more.isEmpty { baseEnded = true }
                    }
                    guard z.pointee.avail_in == 0, baseEnded else {
                        throw ArchiveError(.compression, "unexpected data after the end of the gzip stream")
                    }
                    ended = true
                case Z_OK:
                    continue
                case Z_BUF_ERROR where z.pointee.avail_in == 0 && baseEnded:
                    throw ArchiveError(.compression, "the gzip data is truncated")
                case Z_BUF_ERROR:
                    continue
                default:
                    let reason = z.pointee.msg.map { String(cString: $0) } ?? "error \(result)"
                    throw ArchiveError(.compression, "the data is not valid gzip: \(reason)")
                }
            }
            if filled < count { output.count = filled }
            return output
        }
    }

    /// gzip compression a piece at a time (deterministic, as `compress`): each piece given to `write` is
    /// compressed into a buffer of fixed size whose output goes to the sink; `finish` ends the stream.
    public final class Deflater {
        private let stream: Stream
        private let sink: (Data) throws -> Void
        private var finished = false

        /// A compressor at `level` (0 to 9; default 6) whose output goes to `sink`.
        public init(level: Int32 = Z_DEFAULT_COMPRESSION, sink: @escaping (Data) throws -> Void) throws {
            stream = try Stream(inflating: false, level: level, bufferSize: 256 * 1024)
            self.sink = sink
        }

        /// Compresses `data`.
        public func write(_ data: Data) throws {
            precondition(!finished, "Gzip.Deflater used after finish()")
            guard !data.isEmpty else { return }
            try data.withUnsafeBytes { input in
                stream.pointer.pointee.next_in = UnsafeMutablePointer(
                    mutating: input.bindMemory(to: Bytef.self).baseAddress!)
                stream.pointer.pointee.avail_in = uInt(input.count)
                try run(Z_NO_FLUSH)
            }
        }

        /// Ends the gzip stream (its trailer goes to the sink).
        public func finish() throws {
            precondition(!finished, "Gzip.Deflater.finish() called twice")
            stream.pointer.pointee.next_in = nil
            stream.pointer.pointee.avail_in = 0
            try run(Z_FINISH)
            finished = true
        }

        private func run(_ flush: Int32) throws {
            let z = stream.pointer
            while true {
                z.pointee.next_out = stream.buffer
                z.pointee.avail_out = uInt(stream.bufferSize)
                let result = deflate(z, flush)
                let wrote = stream.bufferSize - Int(z.pointee.avail_out)
                if wrote > 0 { try sink(Data(bytes: stream.buffer, count: wrote)) }
                switch result {
                case Z_STREAM_END:
                    return
                case Z_OK, Z_BUF_ERROR:
                    // Done with this input once zlib has taken all of it and had room to spare.
                    if flush != Z_FINISH, z.pointee.avail_in == 0, z.pointee.avail_out > 0 { return }
                default:
                    throw ArchiveError(.compression, "zlib could not compress (error \(result))")
                }
            }
        }
    }
}
