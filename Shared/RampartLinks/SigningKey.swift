import Crypto
import Foundation

/// A secret that signs download links (L2), named by a short key id that travels in every URL.
///
/// `description` and `debugDescription` show only the key id, never the secret.
public struct SigningKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// Eight lowercase hexadecimal characters naming the key in URLs (`kid=`).
    public let id: String
    /// The 32-byte HMAC-SHA-256 secret (kept as bytes: `SymmetricKey` is not `Sendable`).
    public var secret: SymmetricKey { SymmetricKey(data: secretBytes) }
    private let secretBytes: [UInt8]

    /// Wraps an existing 32-byte secret; without `id`, the id is the first 8 hex characters of
    /// SHA-256 of the secret. Throws when the secret is not 32 bytes or the id is not 8 lowercase hex.
    public init(secret: SymmetricKey, id: String? = nil) throws(SigningKeyError) {
        guard secret.bitCount == 256 else { throw SigningKeyError("a signing key must be 32 bytes") }
        let keyId = id ?? secret.withUnsafeBytes { SigningKey.derivedId(of: $0) }
        guard SigningKey.isValidId(keyId) else {
            throw SigningKeyError("a signing key id must be 8 lowercase hexadecimal characters")
        }
        self.id = keyId
        self.secretBytes = secret.withUnsafeBytes { Array($0) }
    }

    /// A new key of 32 random bytes with its derived id.
    public static func generate() -> SigningKey {
        let secret = SymmetricKey(size: .bits256)
        return SigningKey(unchecked: secret, id: secret.withUnsafeBytes { derivedId(of: $0) })
    }

    /// Whether `text` has the form of a key id: exactly 8 lowercase hexadecimal characters.
    public static func isValidId(_ text: String) -> Bool {
        text.utf8.count == 8 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// Shows the key id only.
    public var description: String { "SigningKey(id: \(id))" }
    /// Shows the key id only; the secret is never printed.
    public var debugDescription: String { description }

    private init(unchecked secret: SymmetricKey, id: String) {
        self.id = id
        self.secretBytes = secret.withUnsafeBytes { Array($0) }
    }

    private static func derivedId(of bytes: UnsafeRawBufferPointer) -> String {
        let digest = SHA256.hash(data: bytes)
        return digest.prefix(4).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// Why a signing key, key ring or signer could not be built; the message never contains a secret.
public struct SigningKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, for people.
    public let message: String
    /// Makes an error with a message for people.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
