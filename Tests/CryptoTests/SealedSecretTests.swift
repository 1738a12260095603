import Foundation
import Testing

@testable import RampartCrypto

@Suite("Secrets sealed under the master key (link-signing keys at rest, L2)")
struct SealedSecretTests {
    @Test("a sealed secret opens under the same key and context")
    func roundTrip() throws {
        let master = MasterKey.generate()
        let secret = Array(testBytes(32))
        let sealed = master.seal(secret: secret, context: "link-signing-key:0a1b2c3d")
        #expect(sealed.count == 12 + 32 + 16)
        #expect(!sealed.contains(secret[0...7]))
        #expect(try master.unseal(sealed, context: "link-signing-key:0a1b2c3d") == secret)
    }

    @Test("sealing twice gives different bytes (random nonce)")
    func freshNonce() {
        let master = MasterKey.generate()
        let secret = Array(testBytes(32))
        #expect(master.seal(secret: secret, context: "c") != master.seal(secret: secret, context: "c"))
    }

    @Test("another context, another master key or any flipped byte is refused")
    func refusals() {
        let master = MasterKey.generate()
        let sealed = master.seal(secret: Array(testBytes(32)), context: "link-signing-key:aaaaaaaa")
        #expect(formatError { _ = try master.unseal(sealed, context: "link-signing-key:bbbbbbbb") }?.code == .keyUnwrapFailed)
        #expect(formatError { _ = try MasterKey.generate().unseal(sealed, context: "link-signing-key:aaaaaaaa") }?.code == .keyUnwrapFailed)
        for index in sealed.indices {
            var damaged = sealed
            damaged[index] ^= 0x01
            #expect(formatError { _ = try master.unseal(damaged, context: "link-signing-key:aaaaaaaa") } != nil)
        }
        #expect(formatError { _ = try master.unseal(Data(), context: "x") } != nil)
    }
}
