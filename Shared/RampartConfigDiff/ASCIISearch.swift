#if canImport(Glibc)
import Glibc
#endif

/// Byte-wise search of ASCII words in configuration lines: the rules and the secret masking look at every
/// line of every file compared, and Foundation's `range(of:)` and `lowercased()` cost tens of
/// microseconds a line (a 1 MiB policy has thousands).
extension Substring {
    /// The first occurrence of `needle` (ASCII; lower-case when `foldingCase`, the line's ASCII letters then
    /// compared lower-cased), or nil.
    func asciiRange(of needle: String, foldingCase: Bool = false) -> Range<Index>? {
        var needle = needle
        let length = needle.utf8.count
        guard length > 0 else { return nil }
        // The needle's own bytes, not a copy of them per call: every rule asks this of every line.
        let found: Int? = needle.withUTF8 { pattern in
            utf8.withContiguousStorageIfAvailable { Self.search(pattern, in: $0, foldingCase: foldingCase) }
                ?? Array(utf8).withUnsafeBufferPointer { Self.search(pattern, in: $0, foldingCase: foldingCase) }
        }
        guard let offset = found else { return nil }
        let start = utf8.index(utf8.startIndex, offsetBy: offset)
        return start..<utf8.index(start, offsetBy: length)
    }

    /// The offset of `pattern` in `bytes`: concrete buffers, so that even an unoptimised build is quick.
    private static func search(
        _ pattern: UnsafeBufferPointer<UInt8>, in bytes: UnsafeBufferPointer<UInt8>, foldingCase: Bool
    ) -> Int? {
        let (count, length) = (bytes.count, pattern.count)
        guard length <= count else { return nil }
        let first = pattern[0]
        var offset = 0
        while offset <= count - length {
            var byte = bytes[offset]
            if foldingCase, byte >= 65, byte <= 90 { byte |= 0x20 }
            if byte == first {
                var index = 1
                while index < length {
                    var other = bytes[offset + index]
                    if foldingCase, other >= 65, other <= 90 { other |= 0x20 }
                    if other != pattern[index] { break }
                    index += 1
                }
                if index == length { return offset }
            }
            offset += 1
        }
        return nil
    }
}

enum ASCIISearch {
    /// Whether `bytes` holds `pattern`: memchr to each place its first byte is, then memcmp there.
    static func contains(_ pattern: UnsafeRawBufferPointer, in bytes: UnsafeRawBufferPointer) -> Bool {
        guard let needle = pattern.baseAddress, !pattern.isEmpty else { return true }
        guard let base = bytes.baseAddress, pattern.count <= bytes.count else { return false }
        let first = Int32(pattern[0])
        let last = bytes.count - pattern.count  // the last offset a match can start at
        var offset = 0
        while offset <= last, let found = memchr(base + offset, first, last - offset + 1) {
            offset = base.distance(to: UnsafeRawPointer(found))
            if memcmp(base + offset, needle, pattern.count) == 0 { return true }
            offset += 1
        }
        return false
    }
}
