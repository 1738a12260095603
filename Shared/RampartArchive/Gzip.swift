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
