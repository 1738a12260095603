/// Byte-wise search of ASCII words in configuration lines: the rules and the secret masking look at every
/// line of every file compared, and Foundation's `range(of:)` and `lowercased()` cost tens of
/// microseconds a line (a 1 MiB policy has thousands).
extension Substring {
    /// The first occurrence of `needle` (ASCII; lower-case when `foldingCase`, the line's ASCII letters then
    /// compared lower-cased), or nil.
    func asciiRange(of needle: String, foldingCase: Bool = false) -> Range<Index>? {
        let pattern = Array(needle.utf8)
        guard !pattern.isEmpty else { return nil }
        let found: Int? =
            utf8.withContiguousStorageIfAvailable { bytes in
                pattern.withUnsafeBufferPointer { Self.search($0, in: bytes, foldingCase: foldingCase) }
            }
            ?? Array(utf8).withUnsafeBufferPointer { bytes in
                pattern.withUnsafeBufferPointer { Self.search($0, in: bytes, foldingCase: foldingCase) }
            }
        guard let offset = found else { return nil }
        let start = utf8.index(utf8.startIndex, offsetBy: offset)
        return start..<utf8.index(start, offsetBy: pattern.count)
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
