import Crypto
import Foundation
import RampartBasics

/// How a file differs between two configuration trees.
public enum FileChange: String, Sendable, Equatable, Codable {
    case added, removed, changed
}

/// One file's difference between two configuration trees.
public struct FileDiff: Sendable, Equatable {
    /// The path, relative to the configuration folder.
    public var path: String
    public var change: FileChange
    /// A secret file, or only secret values changed: nothing of its content is shown (B12).
    public var secret = false
    /// Not text: compared byte for byte, no lines shown.
    public var binary = false
    /// Lines added and removed (0 for secret and binary files).
    public var linesAdded = 0
    public var linesRemoved = 0
    /// Secret values in the file's lines changed (shown masked, so the lines may read the same).
    public var secretValuesChanged = false
    /// More lines differ than are worked out line by line (`LineDiff.maxDifferences`): counted, not shown.
    public var tooManyToShow = false
    /// The unified diff's hunks (empty for secret and binary files, and when too many lines differ).
    public var hunks: [LineDiff.Hunk] = []

    public init(path: String, change: FileChange) {
        self.path = path
        self.change = change
    }

    /// "changed (secret)", "added, 12 lines", "changed, +3 -1 lines".
    public var summary: String {
        if secret { return "\(change.rawValue) (secret)" }
        if binary { return "\(change.rawValue) (binary)" }
        switch change {
        case .added: return "added, \(linesAdded) lines"
        case .removed: return "removed, \(linesRemoved) lines"
        case .changed:
            return "changed, +\(linesAdded) -\(linesRemoved) lines" + (secretValuesChanged ? ", secret values changed" : "")
        }
    }

    /// The unified diff of this file: `--- a/PATH`, `+++ b/PATH` and the hunks (empty when nothing is shown).
    public var unified: String {
        guard !hunks.isEmpty else { return "" }
        let old = change == .added ? "/dev/null" : "a/" + path
        let new = change == .removed ? "/dev/null" : "b/" + path
        return "--- \(old)\n+++ \(new)\n" + hunks.map(\.text).joined()
    }
}

/// The differences between two configuration trees, file by file.
public struct TreeDiff: Sendable, Equatable {
    /// The files that differ once normalised, in path order.
    public var files: [FileDiff] = []
    /// Files present on both sides and equal once normalised.
    public var unchanged = 0
    /// Of those, files whose bytes differ only in volatile content.
    public var volatileOnly = 0
    /// Lines each normalisation rule dropped or rewrote, both sides together.
    public var touched: [String: Int] = [:]

    public init() {}

    /// Whether the trees hold the same configuration.
    public var isEmpty: Bool { files.isEmpty }

    /// The trees `old` and `new` (path → contents, `manifest.json` excluded by the caller) compared:
    /// normalised (`ConfigNormaliser`), secrets never shown (`ConfigSecrets`), `context` lines around changes.
    public static func compare(old: [String: Data], new: [String: Data], context: Int = 3) -> TreeDiff {
        var diff = TreeDiff()
        let paths = Set(old.keys).union(new.keys).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for path in paths {
            switch (old[path], new[path]) {
            case (let before?, let after?):
                if before == after {
                    diff.unchanged += 1
                    continue
                }
                if let file = diff.changed(path: path, before, after, context: context) {
                    diff.files.append(file)
                } else {
                    diff.unchanged += 1
                    diff.volatileOnly += 1
                }
            case (nil, let after?):
                diff.files.append(diff.present(path: path, after, as: .added))
            case (let before?, nil):
                diff.files.append(diff.present(path: path, before, as: .removed))
            case (nil, nil):
                continue
            }
        }
        return diff
    }

    /// A file on one side only: every line added (or removed).
    private mutating func present(path: String, _ contents: Data, as change: FileChange) -> FileDiff {
        var file = FileDiff(path: path, change: change)
        if ConfigSecrets.isSecretFile(path: path, contents: contents) {
            file.secret = true
            return file
        }
        guard let normalised = normalise(path: path, contents) else {
            file.binary = true
            return file
        }
        let lines = normalised.lines.map(ConfigSecrets.masked)
        let script: [LineDiff.Edit] =
            change == .added ? lines.indices.map { .added(to: $0) } : lines.indices.map { .removed(from: $0) }
        if change == .added { file.linesAdded = lines.count } else { file.linesRemoved = lines.count }
        file.hunks = LineDiff.hunks(
            script, old: change == .removed ? lines : [], new: change == .added ? lines : [], context: 0)
        return file
    }

    /// A file on both sides whose bytes differ: nil when they are equal once normalised.
    private mutating func changed(path: String, _ before: Data, _ after: Data, context: Int) -> FileDiff? {
        var file = FileDiff(path: path, change: .changed)
        if ConfigSecrets.isSecretFile(path: path, contents: before) || ConfigSecrets.isSecretFile(path: path, contents: after) {
            file.secret = true
            return file
        }
        guard let old = normalise(path: path, before), let new = normalise(path: path, after) else {
            file.binary = true
            return file
        }
        guard old.lines != new.lines else { return nil }
        let (oldShown, newShown) = (old.lines.map(ConfigSecrets.masked), new.lines.map(ConfigSecrets.masked))
        guard oldShown != newShown else {
            // Only secret values changed: say so, show none of them.
            file.secret = true
            return file
        }
        file.secretValuesChanged = Self.secretLines(old.lines, shown: oldShown) != Self.secretLines(new.lines, shown: newShown)
        guard let script = LineDiff.edits(oldShown, newShown) else {
            file.tooManyToShow = true
            let (oldCounts, newCounts) = (Self.counts(oldShown), Self.counts(newShown))
            file.linesRemoved = oldCounts.reduce(0) { $0 + max(0, $1.value - (newCounts[$1.key] ?? 0)) }
            file.linesAdded = newCounts.reduce(0) { $0 + max(0, $1.value - (oldCounts[$1.key] ?? 0)) }
            return file
        }
        for edit in script {
            switch edit {
            case .same: break
            case .removed: file.linesRemoved += 1
            case .added: file.linesAdded += 1
            }
        }
        file.hunks = LineDiff.hunks(script, old: oldShown, new: newShown, context: context)
        return file
    }

    private mutating func normalise(path: String, _ contents: Data) -> NormalisedText? {
        guard let normalised = ConfigNormaliser.normalise(path: path, contents: contents) else { return nil }
        for (rule, count) in normalised.touched { touched[rule, default: 0] += count }
        return normalised
    }

    /// The lines holding a secret value (those `shown` masked), unmasked, counted (their order does not matter).
    private static func secretLines(_ lines: [Substring], shown: [Substring]) -> [Substring: Int] {
        counts(zip(lines, shown).filter { $0.0 != $0.1 }.map(\.0))
    }

    private static func counts(_ lines: [Substring]) -> [Substring: Int] {
        lines.reduce(into: [:]) { $0[$1, default: 0] += 1 }
    }
}

/// A configuration tree's fingerprint: each file's SHA-256 once normalised (text) or as stored (binary and
/// secret files: a rotated key is a change), so that two backups holding the same configuration — every
/// export differs in its volatile lines — compare equal, and the files that changed can be named without
/// their contents.
public struct ConfigFingerprint: Sendable, Equatable, Codable {
    /// Path → lower-case hex SHA-256.
    public var files: [String: String]

    public init(files: [String: String] = [:]) {
        self.files = files
    }

    /// The fingerprint of `tree` (path → contents).
    public init(tree: [String: Data]) {
        files = Dictionary(uniqueKeysWithValues: tree.map { ($0.key, Self.digest(path: $0.key, contents: $0.value)) })
    }

    /// The SHA-256 of one file as compared.
    public static func digest(path: String, contents: Data) -> String {
        var hash = SHA256()
        if !ConfigSecrets.isSecretFile(path: path, contents: contents),
            let normalised = ConfigNormaliser.normalise(path: path, contents: contents)
        {
            hash.update(data: Data("text\n".utf8))
            for line in normalised.lines {
                hash.update(data: Data(line.utf8))
                hash.update(data: Data([0x0A]))
            }
        } else {
            hash.update(data: Data("bytes\n".utf8))
            hash.update(data: contents)
        }
        return hash.finalize().hexString
    }

    /// The files that differ from `older`: added, removed or changed, in path order.
    public func changedPaths(since older: ConfigFingerprint) -> [String] {
        Set(files.keys).union(older.files.keys).filter { files[$0] != older.files[$0] }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}
