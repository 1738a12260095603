import Foundation
import RampartArchive
@testable import RampartConfigDiff
import Testing

@Suite("P17: configuration diffs — volatile lines normalised by listed rules, secrets never shown")
struct NormalisationTests {
    func lines(_ text: String) -> [Substring] { ConfigText.lines(Data(text.utf8))! }

    @Test("P17: each rule drops or rewrites its volatile lines, in its files only, and counts them")
    func eachRule() {
        let config = """
            : Saved
            : Written by enable_15 at 21:05:33.123 UTC Mon Dec 7 2026
            hostname fw-1
            ntp clock-period 36000012
            ntp server ntp1.corp.example
            Cryptochecksum:0f1e2d3c4b5a69788796a5b4c3d2e1f0
            """
        let normalised = ConfigNormaliser.normalise(path: "running-config", lines: lines(config))
        #expect(normalised.lines == ["hostname fw-1", "ntp server ntp1.corp.example"])
        #expect(normalised.touched == ["saved-banner": 2, "config-checksum": 1, "ntp-clock-period": 1])
        // The same lines in another file are configuration.
        #expect(ConfigNormaliser.normalise(path: "notes/running-config", lines: lines(config)).lines.count == 6)

        let rule = #"    {"id": 7, "name": "rule-7", "hits": 12345, "last_hit": "2026-12-07T21:05:33Z", "log": "end"},"#
        let policy = ConfigNormaliser.normalise(path: "policies/access-policy.json", lines: [Substring(rule)])
        #expect(policy.lines == [#"    {"id": 7, "name": "rule-7", "hits": _, "last_hit": _, "log": "end"},"#])
        #expect(policy.touched == ["hit-counters": 1])
        #expect(ConfigNormaliser.normalise(path: "policies/sub/x.json", lines: [Substring(rule)]).lines == [Substring(rule)])
        #expect(ConfigNormaliser.normalise(path: "interfaces.json", lines: [Substring(rule)]).lines == [Substring(rule)])
    }

    @Test("P17: every rule has a name, files and a description, names are unique (docs/config-diff.md lists them)")
    func listed() {
        let names = ConfigNormaliser.rules.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(ConfigNormaliser.rules.allSatisfy { !$0.files.isEmpty && $0.description.count > 20 })
    }

    @Test("P17: ASCII words are found byte by byte, case folded when asked, in lines holding any UTF-8")
    func asciiSearch() throws {
        let line: Substring = "naïve Pre-Shared-Key été x"
        let found = try #require(line.asciiRange(of: "pre-shared-key", foldingCase: true))
        #expect(line[found] == "Pre-Shared-Key")
        #expect(line.asciiRange(of: "pre-shared-key") == nil)
        #expect(line.asciiRange(of: "x").map { line[$0] } == "x")
        #expect(line.asciiRange(of: "x y") == nil && ("" as Substring).asciiRange(of: "a") == nil)
        let slice = "abc hits: 1".dropFirst(4)
        #expect(slice.asciiRange(of: "hits").map { slice[$0] } == "hits")
    }

    @Test("P17: text is UTF-8 without NUL; a final line feed ends the last line")
    func text() {
        #expect(ConfigText.lines(Data("a\nb\n".utf8)) == ["a", "b"])
        #expect(ConfigText.lines(Data("a\n\nb".utf8)) == ["a", "", "b"])
        #expect(ConfigText.lines(Data([0x61, 0x00, 0x62])) == nil)
        #expect(ConfigText.lines(Data([0xff, 0xfe])) == nil)
        #expect(ConfigText.lines(Data()) == [] && ConfigText.lines(Data("\n".utf8)) == [""])
        #expect(ConfigText.lines(Data("a\r\nb\r\n".utf8)) == ["a\r", "b\r"], "cut at line feed bytes")
        #expect(ConfigText.lines(Data("é\nü".utf8)) == ["é", "ü"])
    }

    @Test("B12: key files and PEM private keys are secret files; secret values in lines are masked")
    func secrets() {
        #expect(ConfigSecrets.isSecretFile(path: "pki/web.key", contents: Data("x".utf8)))
        #expect(ConfigSecrets.isSecretFile(path: "vpn/branch.psk", contents: Data("x".utf8)))
        #expect(ConfigSecrets.isSecretFile(path: "misc.pem", contents: Data("-----BEGIN EC PRIVATE KEY-----\n".utf8)))
        #expect(!ConfigSecrets.isSecretFile(path: "pki/web.crt", contents: Data("-----BEGIN CERTIFICATE-----\n".utf8)))
        #expect(ConfigSecrets.masked(" pre-shared-key s3cr3t-Value") == " pre-shared-key <secret>")
        #expect(ConfigSecrets.masked(#"  "psk": "abc", "peer": "x""#) == #"  "psk": <secret>"#)
        #expect(ConfigSecrets.masked("username admin Password hunter2 encrypted") == "username admin Password <secret>")
        #expect(ConfigSecrets.masked("hostname fw-1") == "hostname fw-1")
        // Several keywords: the one listed first wins, from its first occurrence, wherever it stands.
        #expect(ConfigSecrets.masked("secret-id 7 password hunter2") == "secret-id 7 password <secret>")
        #expect(ConfigSecrets.masked("PASSWORD=a password=b") == "PASSWORD=<secret>")
        #expect(ConfigSecrets.masked("pre-shared password x") == "pre-shared password <secret>", "a keyword's start alone is none")
        #expect(ConfigSecrets.masked("secret") == "secret" && ConfigSecrets.masked("") == "")
        #expect(ConfigSecrets.masked("ésecret: ü") == "ésecret: <secret>")
        // The PEM marker anywhere in a file, also at its very end or past a false start.
        #expect(ConfigSecrets.isSecretFile(path: "a.txt", contents: Data("xx PRIVATE KEY---- PRIVATE KEY-----".utf8)))
        #expect(!ConfigSecrets.isSecretFile(path: "a.txt", contents: Data("PRIVATE KEY----".utf8)))
        #expect(!ConfigSecrets.isSecretFile(path: "a.txt", contents: Data()))
    }
}

@Suite("P17: line diffs (Myers) and unified hunks")
struct LineDiffTests {
    /// Applies an edit script to `old`, which must give `new`.
    func apply(_ script: [LineDiff.Edit], old: [String], new: [String]) -> [String] {
        script.compactMap { edit in
            switch edit {
            case .same(let from, let to):
                #expect(old[from] == new[to])
                return old[from]
            case .removed: return nil
            case .added(let to): return new[to]
            }
        }
    }

    @Test("P17: the script turns old into new and is as short as possible")
    func shortest() throws {
        let old = ["a", "b", "c", "a", "b", "b", "a"]
        let new = ["c", "b", "a", "b", "a", "c"]
        let script = try #require(LineDiff.edits(old, new))
        #expect(apply(script, old: old, new: new) == new)
        #expect(script.filter { if case .same = $0 { return false } else { return true } }.count == 5)  // Myers' example: D = 5
        #expect(LineDiff.edits([String](), ["x"]) == [.added(to: 0)])
        #expect(LineDiff.edits(["x"], [String]()) == [.removed(from: 0)])
        #expect(LineDiff.edits(["x", "y"], ["x", "y"]) == [.same(from: 0, to: 0), .same(from: 1, to: 1)])
    }

    @Test("P17: random edits of random texts: every script applies and is no longer than the edits made")
    func random() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let old = (0..<Int.random(in: 0...60, using: &generator)).map { _ in String(Int.random(in: 0...9, using: &generator)) }
            var new = old
            var made = 0
            for _ in 0..<Int.random(in: 0...8, using: &generator) {
                if !new.isEmpty, Bool.random(using: &generator) {
                    new.remove(at: Int.random(in: 0..<new.count, using: &generator))
                } else {
                    new.insert("n\(made)", at: Int.random(in: 0...new.count, using: &generator))
                }
                made += 1
            }
            let script = try #require(LineDiff.edits(old, new))
            #expect(apply(script, old: old, new: new) == new)
            #expect(script.count { if case .same = $0 { return false } else { return true } } <= made)
        }
    }

    @Test("P17: more differing lines than the limit give up instead of growing memory")
    func limit() {
        let old = (0..<50).map { "o\($0)" }
        let new = (0..<50).map { "n\($0)" }
        #expect(LineDiff.edits(old, new, limit: 99) == nil)
        #expect(LineDiff.edits(old, new, limit: 100) != nil)
    }

    @Test("P17: hunks carry 3 lines of context, join when close, and number lines like diff -u")
    func hunks() throws {
        let old = (1...20).map { "line \($0)" }
        var new = old
        new[4] = "changed 5"
        new.insert("inserted", at: 8)
        new.remove(at: 19)  // old line 19
        let script = try #require(LineDiff.edits(old, new))
        let hunks = LineDiff.hunks(script, old: old, new: new)
        #expect(hunks.count == 2)
        #expect(hunks[0].text.hasPrefix("@@ -2,10 +2,11 @@\n line 2\n line 3\n line 4\n-line 5\n+changed 5\n"))
        #expect(hunks[1].text == "@@ -16,5 +17,4 @@\n line 16\n line 17\n line 18\n-line 19\n line 20\n")
        let added = LineDiff.hunks([.added(to: 0), .added(to: 1)], old: [String](), new: ["x", "y"], context: 0)
        #expect(added.map(\.text) == ["@@ -0,0 +1,2 @@\n+x\n+y\n"])
    }
}

@Suite("P17: trees compared file by file; fingerprints name changed files without contents")
struct TreeDiffTests {
    static let key1 = Data("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".utf8)
    static let key2 = Data("-----BEGIN EC PRIVATE KEY-----\nBBBB\n-----END EC PRIVATE KEY-----\n".utf8)

    func tree(_ files: [String: String]) -> [String: Data] { files.mapValues { Data($0.utf8) } }

    @Test("P17, B12: added, removed, changed and secret files; volatile-only changes count as unchanged")
    func compare() {
        let old = tree([
            "running-config": ": Saved\n: Written by a at 1\nhostname fw-1\nsnmp-server location dc-1\nCryptochecksum:aa\n",
            "interfaces.json": "{}\n", "old.txt": "gone\n", "vpn/ra.conf": "pre-shared-key first\n",
        ]).merging(["pki/web.key": Self.key1]) { $1 }
        let new = tree([
            "running-config": ": Saved\n: Written by a at 2\nhostname fw-1\nsnmp-server location dc-2\nCryptochecksum:bb\n",
            "interfaces.json": "{}\n", "new.txt": "one\ntwo\n", "vpn/ra.conf": "pre-shared-key second\n",
        ]).merging(["pki/web.key": Self.key2]) { $1 }
        let diff = TreeDiff.compare(old: old, new: new)
        #expect(diff.files.map(\.path) == ["new.txt", "old.txt", "pki/web.key", "running-config", "vpn/ra.conf"])
        #expect(diff.files.map(\.summary) == [
            "added, 2 lines", "removed, 1 lines", "changed (secret)", "changed, +1 -1 lines", "changed (secret)",
        ])
        #expect(diff.unchanged == 1 && diff.volatileOnly == 0)
        let config = diff.files[3]
        #expect(config.unified == """
            --- a/running-config
            +++ b/running-config
            @@ -1,2 +1,2 @@
             hostname fw-1
            -snmp-server location dc-1
            +snmp-server location dc-2

            """)
        // Nothing secret appears anywhere in what is shown.
        let shown = diff.files.map(\.unified).joined()
        #expect(!shown.contains("AAAA") && !shown.contains("BBBB") && !shown.contains("first") && !shown.contains("second"))
        #expect(diff.files[2].hunks.isEmpty && diff.files[4].hunks.isEmpty)
        #expect(diff.touched["saved-banner"] == 4 && diff.touched["config-checksum"] == 2)

        let volatile = tree(["running-config": ": Saved\n: Written by a at 3\nhostname fw-1\nCryptochecksum:cc\n"])
        let again = tree(["running-config": ": Saved\n: Written by a at 4\nhostname fw-1\nCryptochecksum:dd\n"])
        let same = TreeDiff.compare(old: volatile, new: again)
        #expect(same.isEmpty && same.unchanged == 1 && same.volatileOnly == 1)
    }

    @Test("B12: a secret line is shown masked when other lines changed too, and its change is said")
    func maskedLine() throws {
        let diff = TreeDiff.compare(
            old: tree(["vpn.conf": "peer a\npre-shared-key one\n"]), new: tree(["vpn.conf": "peer b\npre-shared-key two\n"]))
        let file = try #require(diff.files.first)
        #expect(file.unified.contains(" pre-shared-key <secret>") && file.unified.contains("+peer b"))
        #expect(!file.unified.contains("two") && !file.unified.contains("one"))
        #expect(file.summary == "changed, +1 -1 lines, secret values changed")
        let same = TreeDiff.compare(
            old: tree(["vpn.conf": "peer a\npre-shared-key one\n"]), new: tree(["vpn.conf": "peer b\npre-shared-key one\n"]))
        #expect(same.files.first?.summary == "changed, +1 -1 lines")
    }

    @Test("P17: fingerprints ignore volatile lines, see key rotations, and name changed paths")
    func fingerprints() {
        let a = ConfigFingerprint(tree: tree(["running-config": ": Written by x at 1\nhostname a\n"]).merging(["k.key": Self.key1]) { $1 })
        let b = ConfigFingerprint(tree: tree(["running-config": ": Written by x at 2\nhostname a\n"]).merging(["k.key": Self.key1]) { $1 })
        let c = ConfigFingerprint(tree: tree(["running-config": "hostname a\n", "n.json": "{}"]).merging(["k.key": Self.key2]) { $1 })
        #expect(a == b)
        #expect(c.changedPaths(since: a) == ["k.key", "n.json"])
        #expect(a.changedPaths(since: c) == ["k.key", "n.json"])
    }

    @Test("P17: an archive's fingerprint equals its tree's, manifest.json left out")
    func archive() throws {
        let manifest = BackupManifest(
            deviceId: "7d0f6a4e-2f7b-4c1e-9a55-0c1d2e3f4a5b", deviceName: "fw-1", serial: "JAD2411A0B1",
            managerId: "rampart-manager", model: "FPR-3120", platform: "physical", hypervisor: "", networkModules: 1,
            interfaces: [.init(type: "1GbE-RJ45", count: 8)], software: .init(version: "7.4.1", patch: 2), role: .standalone,
            managementIp: "10.0.0.11", createdAt: "2026-12-07T12:00:00Z", jobId: "job-1")
        let files = ["running-config": Data("hostname a\n".utf8), "pki/a.key": Self.key1]
        let archive = try BackupArchive.build(manifest: manifest, files: files)
        #expect(try ConfigTree.files(ofArchive: archive) == files)
        #expect(try ConfigTree.fingerprint(ofArchive: DataSource(archive)) == ConfigFingerprint(tree: files))
    }
}
