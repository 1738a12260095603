import Crypto
import Foundation

/// The header of a sealed object (96 bytes; every frame authenticates it as AAD):
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 8 | magic `RMPOBJ1\n` |
/// | 8 | 1 | format version (1) |
/// | 9 | 16 | master key id, ASCII lower-case hex |
/// | 25 | 60 | wrapped data key: nonce 12 ‖ ciphertext 32 ‖ tag 16 |
/// | 85 | 7 | nonce prefix (random per object) |
/// | 92 | 4 | frame size, big-endian (plaintext bytes per non-final frame) |
public struct ObjectHeader: Sendable, Equatable {
    /// "RMPOBJ1\n".
    public static let magic = Data("RMPOBJ1\n".utf8)
    /// The format version written and read.
    public static let version: UInt8 = 1
    /// Encoded size in bytes.
    public static let size = 96
    /// Size of the random nonce prefix.
    public static let noncePrefixSize = 7
    /// Frame size used unless told otherwise: 64 KiB.
    public static let defaultFrameSize = 64 * 1024
    /// Frame sizes accepted when reading (a damaged header cannot make a reader allocate gigabytes).
    public static let frameSizes = 16...(16 * 1024 * 1024)

    /// The id of the master key that wraps the data key.
    public var keyId: String
    /// The data key wrapped by the master key (`MasterKey.wrappedKeySize` bytes).
    public var wrappedKey: Data
    /// The 7-byte nonce prefix of every frame of this object.
    public var noncePrefix: Data
    /// Plaintext bytes per frame (the final frame holds 0...frameSize).
    public var frameSize: Int

    /// A header from its fields.
    public init(keyId: String, wrappedKey: Data, noncePrefix: Data, frameSize: Int) {
        self.keyId = keyId
        self.wrappedKey = wrappedKey
        self.noncePrefix = noncePrefix
        self.frameSize = frameSize
    }

    /// The 96 header bytes.
    public func encoded() -> Data {
        var data = Data(capacity: Self.size)
        data.append(Self.magic)
        data.append(Self.version)
        data.append(Data(keyId.utf8))
        data.append(wrappedKey)
        data.append(noncePrefix)
        withUnsafeBytes(of: UInt32(frameSize).bigEndian) { data.append(contentsOf: $0) }
        return data
    }

    /// Decodes and checks the first 96 bytes of `data`.
    public init(decoding data: Data) throws {
        let bytes = [UInt8](data.prefix(Self.size))
        guard bytes.count == Self.size else {
            throw CryptoFormatError(.badLength, "a sealed object starts with a \(Self.size)-byte header; only \(bytes.count) bytes")
        }
        guard Data(bytes[0..<8]) == Self.magic else { throw CryptoFormatError(.badMagic, "not a Rampart sealed object") }
        guard bytes[8] == Self.version else {
            throw CryptoFormatError(.unsupportedVersion, "format version \(bytes[8]) is not supported (this code reads \(Self.version))")
        }
        let keyId = bytes[9..<25]
        guard keyId.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw CryptoFormatError(.malformedHeader, "the master key id is not hex")
        }
        let frameSize = bytes[92..<96].reduce(0) { $0 << 8 | Int($1) }
        guard Self.frameSizes.contains(frameSize) else {
            throw CryptoFormatError(.malformedHeader, "impossible frame size \(frameSize)")
        }
        self.init(
            keyId: String(decoding: keyId, as: UTF8.self), wrappedKey: Data(bytes[25..<85]),
            noncePrefix: Data(bytes[85..<92]), frameSize: frameSize)
    }
}

/// Where things are in a sealed object of a given length: frames of `frameSize + 16` bytes after the
/// header, the last one (the final frame) holding 0...frameSize plaintext bytes plus its tag.
public struct ObjectLayout: Sendable, Equatable {
    /// AES-GCM tag size.
    public static let tagSize = 16

    /// Plaintext bytes per non-final frame.
    public var frameSize: Int
    /// Number of frames (at least 1).
    public var frameCount: UInt64
    /// Plaintext size of the whole object.
    public var plaintextSize: UInt64

    /// The layout of an object of `plaintextSize` bytes.
    public init(frameSize: Int, plaintextSize: UInt64) {
        self.frameSize = frameSize
        self.plaintextSize = plaintextSize
        self.frameCount = max(1, (plaintextSize + UInt64(frameSize) - 1) / UInt64(frameSize))
    }

    /// The layout implied by a sealed file of `sealedSize` bytes (header included); throws `.badLength`
    /// when no object has that length.
    public init(frameSize: Int, sealedSize: UInt64) throws {
        let header = UInt64(ObjectHeader.size)
        let tag = UInt64(Self.tagSize)
        let stride = UInt64(frameSize) + tag
        guard sealedSize >= header + tag else {
            throw CryptoFormatError(.badLength, "\(sealedSize) bytes cannot hold a header and a final frame")
        }
        let body = sealedSize - header
        let count = (body + stride - 1) / stride
        let last = body - (count - 1) * stride
        guard last >= tag, count <= UInt64(UInt32.max) + 1 else {
            throw CryptoFormatError(.badLength, frame: count - 1, "the last frame is shorter than a tag (truncated?)")
        }
        self.frameSize = frameSize
        self.frameCount = count
        self.plaintextSize = body - count * tag
    }

    /// Total size of the sealed file.
    public var sealedSize: UInt64 { UInt64(ObjectHeader.size) + plaintextSize + frameCount * UInt64(Self.tagSize) }

    /// Whether `frame` is the final one.
    public func isFinal(_ frame: UInt64) -> Bool { frame == frameCount - 1 }

    /// Plaintext offset of the first byte of `frame`.
    public func plaintextOffset(of frame: UInt64) -> UInt64 { frame * UInt64(frameSize) }

    /// Plaintext bytes in `frame`.
    public func plaintextLength(of frame: UInt64) -> Int {
        isFinal(frame) ? Int(plaintextSize - plaintextOffset(of: frame)) : frameSize
    }

    /// Byte offset of `frame` in the sealed file.
    public func sealedOffset(of frame: UInt64) -> UInt64 {
        UInt64(ObjectHeader.size) + frame * UInt64(frameSize + Self.tagSize)
    }

    /// Sealed size of `frame` (plaintext plus tag).
    public func sealedLength(of frame: UInt64) -> Int { plaintextLength(of: frame) + Self.tagSize }

    /// The frames holding plaintext bytes `offset..<offset+length` (clamped to the object); at least the
    /// final frame when the range is empty at the end.
    public func frames(coveringOffset offset: UInt64, length: UInt64) -> ClosedRange<UInt64> {
        let end = min(plaintextSize, offset + length)
        let first = min(offset / UInt64(frameSize), frameCount - 1)
        let last = end == 0 ? 0 : min((end - 1) / UInt64(frameSize), frameCount - 1)
        return first...max(first, last)
    }
}

/// The nonce of frame `index`: prefix (7) ‖ index big-endian (4) ‖ final flag (1).
func frameNonce(prefix: Data, index: UInt64, isFinal: Bool) throws -> AES.GCM.Nonce {
    guard index <= UInt64(UInt32.max) else {
        throw CryptoFormatError(.outOfRange, frame: index, "an object holds at most 2^32 frames")
    }
    var bytes = Data(prefix)
    withUnsafeBytes(of: UInt32(index).bigEndian) { bytes.append(contentsOf: $0) }
    bytes.append(isFinal ? 1 : 0)
    return try AES.GCM.Nonce(data: bytes)
}
