import Foundation
import RampartBus
import RampartRPC

/// Checks of request fields that need no state; each failure is an `INVALID_ARGUMENT` naming the field.
enum StorageRules {
    /// Largest chunk accepted by UploadChunk and returned by ReadObject: 1 MiB.
    static let maxChunk = 1 << 20
    static let maxNameBytes = 255
    static let maxOwnerBytes = 256
    static let maxKeyBytes = 512
    static let maxContentTypeBytes = 128

    /// A 64-digit hex SHA-256, lower-cased.
    static func sha256(_ value: String, field: String) throws -> String {
        let lower = value.lowercased()
        guard lower.utf8.count == 64, lower.utf8.allSatisfy(isHexDigit) else {
            throw RPCError.invalidArgument("\(field) must be 64 hex digits (a SHA-256), got \(quoted(value))")
        }
        return lower
    }

    /// An upload id (a UUID).
    static func uploadId(_ value: String) throws -> UUID {
        guard let id = UUID(uuidString: value) else {
            throw RPCError.invalidArgument("upload_id must be the UUID BeginUpload returned, got \(quoted(value))")
        }
        return id
    }

    /// A file name: 1–255 bytes, no '/', NUL or other control characters, not "." or "..".
    static func fileName(_ value: String) throws {
        guard !value.isEmpty else { throw RPCError.invalidArgument("file_name must not be empty") }
        guard value.utf8.count <= maxNameBytes else {
            throw RPCError.invalidArgument("file_name is longer than \(maxNameBytes) bytes")
        }
        guard value != ".", value != "..", !value.contains("/"), !hasControl(value) else {
            throw RPCError.invalidArgument("file_name must be a plain name without '/', '..' or control characters")
        }
    }

    /// A content type: empty (becomes application/octet-stream) or a type/subtype of printable ASCII.
    static func contentType(_ value: String) throws -> String {
        if value.isEmpty { return "application/octet-stream" }
        guard value.utf8.count <= maxContentTypeBytes, value.utf8.allSatisfy({ (0x21...0x7e).contains($0) }),
            value.split(separator: "/", omittingEmptySubsequences: false).count == 2
        else {
            throw RPCError.invalidArgument("content_type must look like application/x-tar, got \(quoted(value))")
        }
        return value
    }

    /// An owner (device or cluster id): at most 256 bytes, no control characters; "" is allowed.
    static func owner(_ value: String) throws {
        guard value.utf8.count <= maxOwnerBytes, !hasControl(value) else {
            throw RPCError.invalidArgument("owner must be at most \(maxOwnerBytes) bytes without control characters")
        }
    }

    /// An idempotency key: at most 512 bytes, no NUL.
    static func idempotencyKey(_ value: String) throws {
        guard value.utf8.count <= maxKeyBytes, !value.utf8.contains(0) else {
            throw RPCError.invalidArgument("idempotency_key must be at most \(maxKeyBytes) bytes without NUL")
        }
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte)
    }

    private static func hasControl(_ value: String) -> Bool {
        value.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
    }

    /// A value quoted for a message, shortened.
    static func quoted(_ value: String) -> String {
        let clean = String(value.unicodeScalars.prefix(80).map { $0.value < 0x20 ? "?" : Character($0) })
        return "'\(clean)\(value.unicodeScalars.count > 80 ? "…" : "")'"
    }
}
