import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A rule that takes volatile content out of a configuration file before two versions are compared:
/// what a device rewrites on every export (times, checksums, counters) is not a change of
/// configuration. The rules are listed in docs/config-diff.md; `ConfigNormaliser.rules` is the list.
public struct NormalisationRule: Sendable {
    /// The rule's name, as the CLI and the diff's JSON list it ("saved-banner").
    public let name: String
    /// The files it applies to: exact paths, or a folder's files (`policies/*.json`).
    public let files: [String]
    /// What it removes or rewrites, and why that content is volatile.
    public let description: String
    /// What it does to one line: nil drops the line, otherwise the line as compared.
    let rewrite: @Sendable (Substring) -> Substring?

    /// Whether the rule applies to the file at `path` (relative to the configuration folder).
    public func applies(to path: String) -> Bool {
        files.contains { pattern in Self.matches(pattern, path) }
    }

    /// `pattern` matches `path`: equal, or `DIR/*SUFFIX` for the files directly in DIR ending in SUFFIX.
    static func matches(_ pattern: String, _ path: String) -> Bool {
        guard let star = pattern.firstIndex(of: "*") else { return pattern == path }
        let prefix = pattern[..<star]
        let suffix = pattern[pattern.index(after: star)...]
        guard path.hasPrefix(prefix), path.hasSuffix(suffix), path.count >= prefix.count + suffix.count else { return false }
        let middle = path.dropFirst(prefix.count).dropLast(suffix.count)
        return !middle.contains("/")
    }
}

/// A configuration file's text as it is compared: the volatile lines dropped or rewritten by
/// `ConfigNormaliser.rules`, with how many lines each rule touched.
public struct NormalisedText: Sendable, Equatable {
    /// The lines as compared (no line feeds).
    public var lines: [Substring]
    /// Lines each rule dropped or rewrote, by rule name (rules that touched nothing are absent).
    public var touched: [String: Int]
}

/// Normalises configuration files (see `NormalisationRule`).
public enum ConfigNormaliser {
    /// The rules, in the order they are tried on each line (the first that changes a line wins).
    public static let rules: [NormalisationRule] = [
        NormalisationRule(
            name: "saved-banner", files: ["running-config"],
            description:
                "the ': Saved' and ': Written by USER at TIME' lines a device writes at the top of every export",
            rewrite: { line in line.hasPrefix(": Saved") || line.hasPrefix(": Written by ") ? nil : line }),
        NormalisationRule(
            name: "config-checksum", files: ["running-config"],
            description: "'Cryptochecksum:HEX', a checksum over the export that changes with the banner's time",
            rewrite: { line in line.hasPrefix("Cryptochecksum:") ? nil : line }),
        NormalisationRule(
            name: "ntp-clock-period", files: ["running-config"],
            description: "'ntp clock-period N', the clock drift the device measures and saves as it runs",
            rewrite: { line in line.hasPrefix("ntp clock-period ") ? nil : line }),
        NormalisationRule(
            name: "hit-counters", files: ["policies/*.json"],
            description:
                "a policy rule's \"hits\": N and \"last_hit\": \"TIME\", traffic counters rather than configuration (shown as \"hits\": _)",
            rewrite: { line in
                var rewritten = replaceValue(after: "\"hits\": ", in: line, number: true)
                rewritten = replaceValue(after: "\"last_hit\": ", in: rewritten, number: false)
                return rewritten
            }),
    ]

    /// The text of `contents` as compared, for the file at `path`; nil when it is not text (not UTF-8, or
    /// holding a NUL byte), which is compared byte for byte.
    public static func normalise(path: String, contents: Data) -> NormalisedText? {
        guard let text = ConfigText.lines(contents) else { return nil }
        return normalise(path: path, lines: text)
    }

    /// `lines` (of the file at `path`) as compared.
    public static func normalise(path: String, lines: [Substring]) -> NormalisedText {
        let applicable = rules.filter { $0.applies(to: path) }
        guard !applicable.isEmpty else { return NormalisedText(lines: lines, touched: [:]) }
        var kept: [Substring] = []
        kept.reserveCapacity(lines.count)
        var touched: [String: Int] = [:]
        for line in lines {
            var current: Substring? = line
            for rule in applicable {
                guard let before = current else { break }
                current = rule.rewrite(before)
                if current != before { touched[rule.name, default: 0] += 1 }
                if current != before { break }
            }
            if let current { kept.append(current) }
        }
        return NormalisedText(lines: kept, touched: touched)
    }

    /// `line` with the value after `key` replaced by `_`: digits when `number`, else a JSON string.
    static func replaceValue(after key: String, in line: Substring, number: Bool) -> Substring {
        guard let range = line.asciiRange(of: key) else { return line }
        var end = range.upperBound
        if number {
            while end < line.endIndex, line[end].isNumber { end = line.index(after: end) }
        } else {
            guard end < line.endIndex, line[end] == "\"" else { return line }
            end = line.index(after: end)
            while end < line.endIndex, line[end] != "\"" {
                if line[end] == "\\" { end = line.index(after: end) }
                if end < line.endIndex { end = line.index(after: end) }
            }
            if end < line.endIndex { end = line.index(after: end) }
        }
        guard end > range.upperBound else { return line }
        return Substring(line[..<range.upperBound] + "_" + line[end...])
    }
}

/// Text files as lines.
public enum ConfigText {
    /// The lines of `contents` without their line feeds (a final line feed ends the last line rather
    /// than starting an empty one); nil when it is not text: not UTF-8, or holding a NUL byte.
    ///
    /// Lines are cut at each line feed byte, not by characters (a profile of the diff showed splitting by
    /// characters, and `Data`'s byte iterator, as a third of its time); a carriage return before a line
    /// feed stays at the end of its line.
    public static func lines(_ contents: Data) -> [Substring]? {
        let holdsNUL = contents.withUnsafeBytes { bytes in
            bytes.baseAddress.map { memchr($0, 0, bytes.count) != nil } ?? false
        }
        guard !holdsNUL, var text = String(data: contents, encoding: .utf8) else { return nil }
        // Offsets found with memchr over the text's own bytes; a UTF-8 view index moves by an offset at once.
        let offsets: [(start: Int, end: Int)] = text.withUTF8 { bytes in
            var offsets: [(start: Int, end: Int)] = []
            guard let base = bytes.baseAddress else { return offsets }
            var start = 0
            while start < bytes.count {
                guard let found = memchr(base + start, 0x0A, bytes.count - start) else {
                    offsets.append((start, bytes.count))
                    break
                }
                let newline = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                offsets.append((start, newline))
                start = newline + 1
            }
            return offsets
        }
        let utf8 = text.utf8
        return offsets.map { line in
            text[utf8.index(utf8.startIndex, offsetBy: line.start)..<utf8.index(utf8.startIndex, offsetBy: line.end)]
        }
    }
}
