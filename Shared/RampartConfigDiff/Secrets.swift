import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Secret material in a configuration tree (B12: private keys, VPN secrets), which a diff never shows.
///
/// - A **secret file** — a private key (`*.key`), a pre-shared key file (`*.psk`), or any file holding a
///   PEM private key — is compared but never shown: a change reads "changed (secret)", with no line
///   and no count.
/// - A **secret line** of any other text file — one naming a pre-shared key, a password or a secret —
///   is shown with its value replaced by `<secret>`; when only such values changed, the file reads
///   "changed (secret)" too.
public enum ConfigSecrets {
    /// What a secret value is shown as.
    public static let mask = "<secret>"
    /// Suffixes of secret files.
    public static let fileSuffixes = [".key", ".psk"]
    /// Words that make a line secret (case-insensitive), with what follows them masked.
    public static let lineKeywords = ["pre-shared-key", "\"psk\"", "password", "secret"]

    /// Whether the file at `path` holding `contents` is a secret file.
    public static func isSecretFile(path: String, contents: Data) -> Bool {
        if fileSuffixes.contains(where: { path.hasSuffix($0) }) { return true }
        return contents.withUnsafeBytes { bytes in
            pemMarker.withUnsafeBytes { ASCIISearch.contains($0, in: bytes) }
        }
    }

    private static let pemMarker = Array("PRIVATE KEY-----".utf8)
    /// The keywords' bytes (lower case), and which bytes start one.
    private static let keywordBytes: [[UInt8]] = lineKeywords.map { Array($0.lowercased().utf8) }
    private static let startsKeyword: [Bool] = (0..<256).map { byte in keywordBytes.contains { $0.first == UInt8(byte) } }

    /// `line` with the value of a secret keyword masked, or `line` itself when it names none. When a line
    /// names several, the one listed first in `lineKeywords` is masked, from its first occurrence.
    public static func masked(_ line: Substring) -> Substring {
        let utf8 = line.utf8
        let found: Int? =
            utf8.withContiguousStorageIfAvailable(keywordEnd(in:)) ?? Array(utf8).withUnsafeBufferPointer(keywordEnd(in:))
        guard let found else { return line }
        // Keep the separator after the keyword (`": "`, `" "`, `"="`), then mask the rest.
        var end = utf8.index(utf8.startIndex, offsetBy: found)
        while end < utf8.endIndex, [0x3A, 0x20, 0x3D, 0x09].contains(utf8[end]) { end = utf8.index(after: end) }
        guard end < line.endIndex else { return line }
        return Substring(line[..<end] + mask)
    }

    /// Where the keyword to mask ends in `bytes` (case-insensitive): one pass over the line for all of
    /// them, since every line of a changed file is looked at (a profile of the diff found a third of its
    /// time in searching each line once per keyword).
    private static func keywordEnd(in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let (keywords, starts) = (keywordBytes, startsKeyword)
        var best: (keyword: Int, end: Int)?
        for offset in 0..<bytes.count {
            var byte = bytes[offset]
            if byte >= 65, byte <= 90 { byte |= 0x20 }
            guard starts[Int(byte)] else { continue }
            for (index, keyword) in keywords.enumerated() {
                if let best, index >= best.keyword { break }
                guard keyword[0] == byte, offset + keyword.count <= bytes.count else { continue }
                var matched = 1
                while matched < keyword.count {
                    var other = bytes[offset + matched]
                    if other >= 65, other <= 90 { other |= 0x20 }
                    guard other == keyword[matched] else { break }
                    matched += 1
                }
                guard matched == keyword.count else { continue }
                if index == 0 { return offset + keyword.count }
                best = (index, offset + keyword.count)
                break
            }
        }
        return best?.end
    }
}
