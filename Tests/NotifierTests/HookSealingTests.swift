import Foundation
import RampartCrypto
import Testing

@testable import NotifierService

@Suite("P15: hook URLs and secrets sealed at rest")
struct HookSealingTests {
    @Test("P15: a sealed URL opens under the same key and hook only; another key is named in the error")
    func sealing() throws {
        let key = MasterKey.generate()
        let sealing = HookSealing(key: key)
        let hook = UUID()
        let url = "https://bot:pa55word@chat.example.net/hook?token=tok3n"
        let sealed = sealing.seal(url, "url", hook: hook)
        #expect(sealed.range(of: Data("pa55word".utf8)) == nil && sealed.range(of: Data("chat.example".utf8)) == nil)
        #expect(try sealing.open(sealed, "url", hook: hook, sealedBy: key.id) == url)
        #expect(sealing.seal(url, "url", hook: hook) != sealed, "a fresh nonce each time")
        // Moved to another hook or field: refused.
        #expect(throws: HookSealError.self) { try sealing.open(sealed, "url", hook: UUID(), sealedBy: key.id) }
        #expect(throws: HookSealError.self) { try sealing.open(sealed, "secret", hook: hook, sealedBy: key.id) }
        // Another notifier's key: refused, saying which key sealed it and which one this is.
        let other = HookSealing(key: MasterKey.generate())
        let error = try #require(throws: HookSealError.self) { try other.open(sealed, "url", hook: hook, sealedBy: key.id) }
        #expect(error.description.contains(key.id) && error.description.contains(other.keyId), "\(error)")
        #expect(!error.description.contains("pa55word"))
        // An empty secret (an unsigned hook) round-trips too.
        #expect(try sealing.open(sealing.seal("", "secret", hook: hook), "secret", hook: hook, sealedBy: key.id) == "")
    }
}
