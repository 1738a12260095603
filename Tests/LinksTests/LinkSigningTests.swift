import Crypto
import Foundation
import Testing

@testable import RampartLinks

private let base = "http://127.0.0.1:7480"
private let now = Date(timeIntervalSince1970: 1_795_000_000)
private let path = "/backups/5b1c8e52-0f0e-4c1e-9a57-2b0d7c3e9f10/fw-01 backup,1.tar"

private func split(_ url: String) -> (path: String, query: String) {
    let rest = url.dropFirst(base.count)
    let parts = rest.split(separator: "?", maxSplits: 1)
    return (String(parts[0]), String(parts[1]))
}

@Suite("L2 signed download links")
struct LinkSigningTests {
    let key = SigningKey.generate()
    var signer: LinkSigner { try! LinkSigner(keys: [key], activeKeyId: key.id, baseURL: base + "/") }

    @Test("L2: a signed link verifies and gives back the decoded path, key, expiry and nonce")
    func roundTrip() throws {
        let link = signer.sign(path: path, now: now)
        #expect(link.url.hasPrefix(base + "/backups/5b1c8e52-0f0e-4c1e-9a57-2b0d7c3e9f10/fw-01%20backup%2C1.tar?expires="))
        #expect(link.expires == now.addingTimeInterval(6 * 3600))
        #expect(link.nonce.count == 22)
        let (p, q) = split(link.url)
        let verified = try signer.verify(method: "GET", path: p, query: q, now: now).get()
        #expect(verified == VerifiedLink(path: path, keyId: key.id, expires: link.expires, nonce: link.nonce))
        #expect(try signer.verify(method: "HEAD", path: p, query: q, now: now).get() == verified)
        #expect(signer.verify(method: "POST", path: p, query: q, now: now) == .failure(.methodNotAllowed))
        #expect(signer.verify(method: "get", path: p, query: q, now: now) == .failure(.methodNotAllowed))
    }

    @Test("L2: the MAC covers exactly GET, path, expiry, key id and nonce")
    func macInput() throws {
        let link = signer.sign(path: "/backups/x/a b.tar", expires: Date(timeIntervalSince1970: 1000.9), nonce: "AAAAAAAAAAAAAAAAAAAAAA")
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("GET\n/backups/x/a%20b.tar\n1000\n\(key.id)\nAAAAAAAAAAAAAAAAAAAAAA".utf8), using: key.secret)
        #expect(link.url == "\(base)/backups/x/a%20b.tar?expires=1000&kid=\(key.id)&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=\(Base64URL.encode(mac))")
    }

    @Test("L2: valid at the expiry second, refused one second past it")
    func expiry() {
        let link = signer.sign(path: path, now: now)
        let (p, q) = split(link.url)
        #expect((try? signer.verify(method: "GET", path: p, query: q, now: link.expires).get()) != nil)
        #expect(signer.verify(method: "GET", path: p, query: q, now: link.expires.addingTimeInterval(1)) == .failure(.expired))
        #expect(signer.verify(method: "GET", path: p, query: q, now: link.expires.addingTimeInterval(0.001)) == .failure(.expired))
    }

    @Test("L2: every single changed character of path or query is refused")
    func tampering() {
        let link = signer.sign(path: path, now: now)
        let target = Array(link.url.dropFirst(base.count))
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/%?&=")
        var tried = 0
        for position in target.indices {
            for replacement in alphabet where replacement != target[position] {
                var changed = target
                changed[position] = replacement
                let text = String(changed)
                let parts = text.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
                let p = String(parts[0]), q = parts.count > 1 ? String(parts[1]) : ""
                let result = signer.verify(method: "GET", path: p, query: q, now: now)
                #expect((try? result.get()) == nil, "accepted after changing position \(position) to \(replacement)")
                tried += 1
            }
        }
        #expect(tried > 10_000)
    }

    @Test("L2: malformed queries are refused with a short reason", arguments: [
        ("", "malformed link: unknown parameter"),
        ("expires=1&kid=abcdef01&nonce=AAAAAAAAAAAAAAAAAAAAAA", "malformed link: missing sig"),
        ("expires=1&expires=1&kid=abcdef01&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=x", "malformed link: repeated expires"),
        ("expires=1&kid=abcdef01&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=AAAA&extra=1", "malformed link: unknown parameter"),
        ("expires=1x&kid=abcdef01&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=AAAA", "malformed link: expires"),
        ("expires=-1&kid=abcdef01&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=AAAA", "malformed link: expires"),
        ("expires=01&kid=abcdef01&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=AAAA", "malformed link: expires"),
        ("expires=1&kid=ABCDEF01&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=AAAA", "malformed link: kid"),
        ("expires=1&kid=abcdef01&nonce=AAAA+AAAAAAAAAAAAAAAAA&sig=AAAA", "malformed link: nonce"),
        ("expires=1&kid=abcdef01&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=AAAA=", "malformed link: sig"),
        ("expires=1&kid=abcdef01&nonce=AAAAAAAAAAAAAAAAAAAAAA&sig=", "malformed link: empty sig"),
    ])
    func malformed(query: String, reason: String) {
        let result = signer.verify(method: "GET", path: "/backups/x/y.tar", query: query, now: now)
        guard case .failure(let refusal) = result else {
            Issue.record("accepted a malformed query")
            return
        }
        #expect(refusal.reason == reason)
    }

    @Test("L2: paths that are not canonically encoded are refused")
    func paths() {
        let link = signer.sign(path: "/backups/x/a b.tar", now: now)
        let (_, q) = split(link.url)
        for p in ["/backups/x/a b.tar", "/backups/x/a%20b%2etar", "/backups/x/a%2g", "/backups/../a%20b.tar", "backups"] {
            #expect(signer.verify(method: "GET", path: p, query: q, now: now) == .failure(.malformedPath))
        }
    }

    @Test("L2: an unknown key id is refused")
    func unknownKey() {
        let other = SigningKey.generate()
        let otherSigner = try! LinkSigner(keys: [other], activeKeyId: other.id, baseURL: base)
        let (p, q) = split(otherSigner.sign(path: path, now: now).url)
        #expect(signer.verify(method: "GET", path: p, query: q, now: now) == .failure(.unknownKey))
    }

    @Test("L2: a link claiming more than the maximum validity is refused even when signed")
    func tooLong() {
        let link = signer.sign(path: path, expires: now.addingTimeInterval(365 * 86400))
        let (p, q) = split(link.url)
        #expect(signer.verify(method: "GET", path: p, query: q, now: now) == .failure(.validityTooLong))
        let edge = signer.sign(path: path, expires: now.addingTimeInterval(6 * 3600 + 1))
        let (p2, q2) = split(edge.url)
        #expect(signer.verify(method: "GET", path: p2, query: q2, now: now) == .failure(.validityTooLong))
    }

    @Test("L2: exporting again gives a different URL (random nonce)")
    func nonces() {
        let links = (0..<100).map { _ in signer.sign(path: path, expires: now) }
        #expect(Set(links.map(\.url)).count == 100)
        #expect(Set(links.map(\.nonce)).count == 100)
    }

    @Test("L2: keys get 8-hex ids derived from SHA-256 and never print their secret")
    func keys() throws {
        let bytes = [UInt8](repeating: 7, count: 32)
        let key = try SigningKey(secret: SymmetricKey(data: bytes))
        let hex = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        #expect(key.id == String(hex.prefix(8)))
        #expect("\(key)" == "SigningKey(id: \(key.id))")
        #expect(String(reflecting: key) == "SigningKey(id: \(key.id))")
        #expect(throws: SigningKeyError.self) { try SigningKey(secret: SymmetricKey(size: .bits128)) }
        #expect(throws: SigningKeyError.self) { try SigningKey(secret: SymmetricKey(size: .bits256), id: "ABCDEF01") }
        #expect(try SigningKey(secret: SymmetricKey(size: .bits256), id: "0123abcd").id == "0123abcd")
        #expect(throws: SigningKeyError.self) {
            try LinkSigner(keys: [key], activeKeyId: "00000000", baseURL: base)
        }
    }
}

@Suite("L2 signing key rotation")
struct KeyRingTests {
    @Test("L2: a retired key verifies until its last link has expired, then is refused; it never signs")
    func retiredKey() throws {
        let ring = KeyRing(active: SigningKey.generate())
        let old = ring.active
        let link = ring.signer(at: now, baseURL: base).sign(path: path, now: now)
        #expect(link.keyId == old.id)
        let rotatedAt = now.addingTimeInterval(60)
        let rotated = ring.rotated(now: rotatedAt)
        #expect(rotated.active.id != old.id)
        #expect(rotated.entries.count == 2)
        let (p, q) = split(link.url)

        let before = rotated.signer(at: link.expires, baseURL: base)
        #expect(before.activeKeyId == rotated.active.id)
        #expect(try before.verify(method: "GET", path: p, query: q, now: link.expires).get().keyId == old.id)
        #expect(before.sign(path: path, now: link.expires).keyId == rotated.active.id)

        let lastValid = rotatedAt.addingTimeInterval(6 * 3600)
        #expect(rotated.usable(at: lastValid).map(\.id).contains(old.id))
        let after = lastValid.addingTimeInterval(1)
        #expect(rotated.usable(at: after).map(\.id) == [rotated.active.id])
        #expect(rotated.signer(at: after, baseURL: base).verify(method: "GET", path: p, query: q, now: after) == .failure(.unknownKey))
        #expect(rotated.pruned(at: after).entries.map(\.key.id) == [rotated.active.id])
        #expect(throws: SigningKeyError.self) {
            try KeyRing(entries: [.init(key: old, retiredAt: now)])
        }
    }
}

@Suite("L2 link validity")
struct LinkValidityTests {
    @Test("L2: validities parse", arguments: [
        ("6h", 21600), ("90m", 5400), ("45s", 45), ("1h30m", 5400), ("1h30m15s", 5415), ("5h60m", 21600), ("0h1s", 1),
    ] as [(String, Int64)])
    func accepted(text: String, seconds: Int64) throws {
        #expect(try LinkValidity.parse(text) == .seconds(seconds))
    }

    @Test("L2: zero, negative, garbage and above the maximum are refused", arguments: [
        "", "0", "0h", "0s", "-1h", "6", "h", "1.5h", "1x", " 1h", "1h ", "30m1h", "1h1h", "6h1s", "7h", "361m",
        "99999999999h", "1H",
    ])
    func refused(text: String) {
        #expect(throws: LinkValidityError.self) { try LinkValidity.parse(text) }
    }

    @Test("L2: errors say what is accepted and what the maximum is")
    func messages() {
        #expect(throws: LinkValidityError("invalid validity \"7h\": the maximum is 6h")) { try LinkValidity.parse("7h") }
        #expect(throws: LinkValidityError("invalid validity \"0m\": it must be longer than zero")) { try LinkValidity.parse("0m") }
        #expect(throws: LinkValidityError(
            "invalid validity \"soon\": use hours, minutes and seconds such as 6h, 90m, 45s or 1h30m")) {
            try LinkValidity.parse("soon")
        }
        #expect(LinkValidity.default == .seconds(21600) && LinkValidity.maximum == .seconds(21600))
    }
}

@Suite("L2 backup links CSV")
struct BackupLinksCSVTests {
    @Test("L2: RFC 4180 quoting, CRLF line ends and ISO 8601 UTC dates")
    func render() {
        let row = BackupLinksCSV.Row(
            deviceName: "fw-01, \"edge\"\nZürich ☃", deviceId: "d1", role: "primary", fileName: "a\rb.tar", size: 1_234_567,
            sha256: "ab", createdAt: Date(timeIntervalSince1970: 1_795_842_717.75), url: "http://h/x?a=1&b=2",
            expiresAt: Date(timeIntervalSince1970: 0))
        let csv = BackupLinksCSV.render([row])
        #expect(csv == "device_name,device_id,role,file_name,size,sha256,created_at,url,expires_at\r\n"
            + "\"fw-01, \"\"edge\"\"\nZürich ☃\",d1,primary,\"a\rb.tar\",1234567,ab,2026-11-28T05:11:57Z,"
            + "http://h/x?a=1&b=2,1970-01-01T00:00:00Z\r\n")
        #expect(BackupLinksCSV.render([]) == BackupLinksCSV.header.joined(separator: ",") + "\r\n")
    }

    @Test("L2: fields", arguments: [
        ("plain", "plain"), ("", ""), ("a,b", "\"a,b\""), ("say \"hi\"", "\"say \"\"hi\"\"\""), ("\"", "\"\"\"\""),
        ("l1\r\nl2", "\"l1\r\nl2\""), ("ünï ✓", "ünï ✓"),
    ])
    func fields(value: String, expected: String) {
        #expect(BackupLinksCSV.field(value) == expected)
    }

    @Test("L2: timestamps", arguments: [
        (0.0, "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"), (1_795_828_317, "2026-11-28T01:11:57Z"),
        (-1, "1969-12-31T23:59:59Z"), (1_795_785_117, "2026-11-27T13:11:57Z"), (4_102_444_799, "2099-12-31T23:59:59Z"),
    ] as [(Double, String)])
    func timestamps(seconds: Double, expected: String) {
        #expect(BackupLinksCSV.timestamp(Date(timeIntervalSince1970: seconds)) == expected)
    }
}
