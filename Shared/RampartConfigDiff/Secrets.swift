import Foundation

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
        return contents.range(of: Data("PRIVATE KEY-----".utf8)) != nil
    }

    /// `line` with the value of a secret keyword masked, or `line` itself when it names none.
    public static func masked(_ line: Substring) -> Substring {
        for keyword in lineKeywords {
            guard let found = line.asciiRange(of: keyword, foldingCase: true) else { continue }
            // Keep the separator after the keyword (`": "`, `" "`, `"="`), then mask the rest.
            var end = found.upperBound
            let utf8 = line.utf8
            while end < utf8.endIndex, [0x3A, 0x20, 0x3D, 0x09].contains(utf8[end]) { end = utf8.index(after: end) }
            guard end < line.endIndex else { return line }
            return Substring(line[..<end] + mask)
        }
        return line
    }
}
