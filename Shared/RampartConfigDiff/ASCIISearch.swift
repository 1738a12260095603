/// Byte-wise search of ASCII words in configuration lines: the rules and the secret masking look at every
/// line of every file compared, and Foundation's `range(of:)` and `lowercased()` cost tens of
/// microseconds a line (a 1 MiB policy has thousands).
extension Substring {
    /// The first occurrence of `needle` (ASCII; lower-case when `foldingCase`, the line's ASCII letters then
    /// compared lower-cased), or nil.
    func asciiRange(of needle: String, foldingCase: Bool = false) -> Range<Index>? {
        let pattern = Array(needle.utf8)
        guard let first = pattern.first else { return nil }
        let found: Int? = utf8.withContiguousStorageIfAvailable { bytes -> Int? in
            Self.search(pattern, first: first, in: bytes, foldingCase: foldingCase)
        } ?? Self.search(pattern, first: first, in: Array(utf8), foldingCase: foldingCase)
        guard let offset = found else { return nil }
        let start = utf8.index(utf8.startIndex, offsetBy: offset)
        return start..<utf8.index(start, offsetBy: pattern.count)
    }

    private static func search(
        _ pattern: [UInt8], first: UInt8, in bytes: some RandomAccessCollection<UInt8>, foldingCase: Bool
    ) -> Int? {
        let count = bytes.count
        guard pattern.count <= count else { return nil }
        @inline(__always) func fold(_ byte: UInt8) -> UInt8 { foldingCase && byte >= 65 && byte <= 90 ? byte | 0x20 : byte }
        var base = bytes.startIndex
        for offset in 0...(count - pattern.count) {
            defer { base = bytes.index(after: base) }
            guard fold(bytes[base]) == first else { continue }
            var matched = true
            var position = bytes.index(after: base)
            for expected in pattern.dropFirst() {
                if fold(bytes[position]) != expected {
                    matched = false
                    break
                }
                position = bytes.index(after: position)
            }
            if matched { return offset }
        }
        return nil
    }
}
