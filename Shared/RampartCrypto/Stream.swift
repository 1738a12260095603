import Crypto
import Foundation

/// Seals a plaintext stream into frames (STREAM construction over AES-256-GCM): feed plaintext of any
/// size with `append`, which returns the frames it could seal; `finish()` returns the final frame.
///
/// A frame is sealed only once more plaintext follows it, so the last frame always carries the final
/// flag. `pending` (at most `frameSize` bytes) is the plaintext not sealed yet; an upload that must
/// survive a restart keeps it only in sealed form (`sealedPending()`, `init(resuming:...)`).
public struct StreamSealer: Sendable {
    /// The object's header; write it before the frames.
    public let header: ObjectHeader
    /// The encoded header (the AAD of every frame).
    public let headerBytes: Data
    /// Frames sealed so far (all non-final until `finish()`).
    public private(set) var framesSealed: UInt64
    /// Plaintext received but not sealed yet.
    public private(set) var pending: Data
    /// Whether `finish()` ran.
    public private(set) var isFinished = false
    private let dataKey: DataKey

    /// A sealer for a new object: a fresh data key wrapped by `masterKey` and a random nonce prefix.
    public init(masterKey: MasterKey, frameSize: Int = ObjectHeader.defaultFrameSize) {
        precondition(ObjectHeader.frameSizes.contains(frameSize), "frame size \(frameSize) out of range")
        let dataKey = DataKey.generate()
        var prefix = Data(count: ObjectHeader.noncePrefixSize)
        var generator = SystemRandomNumberGenerator()
        for index in prefix.indices { prefix[index] = UInt8.random(in: 0...255, using: &generator) }
        self.init(
            header: ObjectHeader(
                keyId: masterKey.id, wrappedKey: masterKey.wrap(dataKey), noncePrefix: prefix, frameSize: frameSize),
            dataKey: dataKey, framesSealed: 0, pending: Data())
    }

    /// A sealer continuing an object whose `framesSealed` frames are already written, with the
    /// unsealed tail as returned by `sealedPending()` (nil: no tail).
    public init(resuming headerBytes: Data, masterKey: MasterKey, framesSealed: UInt64, sealedPending: Data?) throws {
        let opener = try StreamOpener(header: headerBytes, masterKey: masterKey)
        let pending = try sealedPending.map {
            try Self.openPending($0, key: opener.dataKey, headerBytes: opener.headerBytes, framesSealed: framesSealed)
        } ?? Data()
        guard pending.count <= opener.header.frameSize else {
            throw CryptoFormatError(.badLength, frame: framesSealed, "the pending tail is longer than a frame")
        }
        self.init(header: opener.header, dataKey: opener.dataKey, framesSealed: framesSealed, pending: pending)
    }

    private init(header: ObjectHeader, dataKey: DataKey, framesSealed: UInt64, pending: Data) {
        self.header = header
        self.headerBytes = header.encoded()
        self.dataKey = dataKey
        self.framesSealed = framesSealed
        self.pending = pending
    }

    /// Plaintext bytes taken in so far (sealed or pending).
    public var plaintextCount: UInt64 { framesSealed * UInt64(header.frameSize) + UInt64(pending.count) }

    /// Takes `plaintext` and returns the frames (ciphertext ‖ tag each) that can now be sealed.
    ///
    /// A full frame is normally kept pending until more bytes follow (it might be the last). When the
    /// object's whole plaintext size is known (`totalSize`) and a full frame ends before it, that frame
    /// cannot be the last and is sealed at once: only the last frame is ever held back whole.
    public mutating func append(_ plaintext: Data, totalSize: UInt64? = nil) throws -> Data {
        precondition(!isFinished, "append after finish")
        if let totalSize, plaintextCount + UInt64(plaintext.count) > totalSize {
            throw CryptoFormatError(
                .outOfRange, "\(plaintextCount + UInt64(plaintext.count)) bytes would exceed the announced \(totalSize)")
        }
        let frameSize = header.frameSize
        let stride = frameSize + ObjectLayout.tagSize
        var output = Data()
        var input = plaintext[...]
        // Complete the pending frame first, sealing it only when more bytes follow.
        if !pending.isEmpty {
            let take = min(frameSize - pending.count, input.count)
            pending.append(input.prefix(take))
            input = input.dropFirst(take)
            if input.isEmpty {
                try sealFullPendingIfNotLast(totalSize, into: &output)
                return output
            }
            output.reserveCapacity((input.count / frameSize + 1) * stride)
            output.append(try seal(pending, isFinal: false))
            pending = Data()
        } else {
            output.reserveCapacity((input.count / frameSize + 1) * stride)
        }
        while input.count > frameSize {
            output.append(try seal(input.prefix(frameSize), isFinal: false))
            input = input.dropFirst(frameSize)
        }
        pending = Data(input)
        try sealFullPendingIfNotLast(totalSize, into: &output)
        return output
    }

    /// Seals a full pending frame when the known total size proves more plaintext follows it.
    private mutating func sealFullPendingIfNotLast(_ totalSize: UInt64?, into output: inout Data) throws {
        guard let totalSize, pending.count == header.frameSize, plaintextCount < totalSize else { return }
        output.append(try seal(pending, isFinal: false))
        pending = Data()
    }

    /// Seals the final frame (the pending bytes, possibly none) and returns it.
    public mutating func finish() throws -> Data {
        precondition(!isFinished, "finish twice")
        let last = try seal(pending, isFinal: true)
        pending = Data()
        isFinished = true
        return last
    }

    /// The pending tail sealed for safekeeping (under a key derived from the data key, bound to the
    /// header and the frame count), so it can live in a database while an upload is open.
    public func sealedPending() -> Data {
        let box = try! AES.GCM.seal(
            pending, using: Self.pendingKey(dataKey), nonce: AES.GCM.Nonce(),
            authenticating: Self.pendingAAD(headerBytes, framesSealed))
        return box.combined!
    }

    private mutating func seal(_ plaintext: some DataProtocol, isFinal: Bool) throws -> Data {
        let nonce = try frameNonce(prefix: header.noncePrefix, index: framesSealed, isFinal: isFinal)
        let box = try AES.GCM.seal(plaintext, using: dataKey.key, nonce: nonce, authenticating: headerBytes)
        framesSealed += 1
        var frame = box.ciphertext
        frame.append(box.tag)
        return frame
    }

    static func pendingKey(_ dataKey: DataKey) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: dataKey.key, info: Data("rampart-pending-v1".utf8), outputByteCount: 32)
    }

    static func pendingAAD(_ headerBytes: Data, _ framesSealed: UInt64) -> Data {
        var aad = headerBytes
        withUnsafeBytes(of: framesSealed.bigEndian) { aad.append(contentsOf: $0) }
        return aad
    }

    static func openPending(_ sealed: Data, key: DataKey, headerBytes: Data, framesSealed: UInt64) throws -> Data {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return try AES.GCM.open(box, using: pendingKey(key), authenticating: pendingAAD(headerBytes, framesSealed))
        } catch {
            throw CryptoFormatError(.frameAuthenticationFailed, frame: framesSealed, "the pending tail does not authenticate")
        }
    }
}

/// Opens the frames of a sealed object one at a time, in any order (random access by offset): checks
/// the header, unwraps the data key, and authenticates each frame with its index and final flag.
public struct StreamOpener: Sendable {
    /// The decoded header.
    public let header: ObjectHeader
    /// The header bytes (AAD of every frame).
    public let headerBytes: Data
    let dataKey: DataKey

    /// An opener for the object whose first bytes are `header`; throws when the header is malformed,
    /// names another master key, or its data key does not authenticate under `masterKey`.
    public init(header: Data, masterKey: MasterKey) throws {
        let decoded = try ObjectHeader(decoding: header)
        guard decoded.keyId == masterKey.id else {
            throw CryptoFormatError(
                .wrongMasterKey, "sealed under master key \(decoded.keyId), but the key at hand is \(masterKey.id)")
        }
        self.header = decoded
        self.headerBytes = decoded.encoded()
        self.dataKey = try masterKey.unwrap(decoded.wrappedKey)
    }

    /// The layout of the sealed file of `sealedSize` bytes.
    public func layout(sealedSize: UInt64) throws -> ObjectLayout {
        try ObjectLayout(frameSize: header.frameSize, sealedSize: sealedSize)
    }

    /// The plaintext of frame `index`, given its sealed bytes (ciphertext ‖ tag) and whether the reader
    /// expects it to be the final frame. Any damage, a frame from another position or object, or a
    /// wrong final flag fails with `.frameAuthenticationFailed` naming the frame.
    public func open(frame index: UInt64, sealed: Data, isFinal: Bool) throws -> Data {
        let tag = ObjectLayout.tagSize
        guard sealed.count >= tag, sealed.count - tag <= header.frameSize else {
            throw CryptoFormatError(.badLength, frame: index, "a frame of \(sealed.count) bytes is impossible")
        }
        guard isFinal || sealed.count - tag == header.frameSize else {
            throw CryptoFormatError(.badLength, frame: index, "a non-final frame must hold \(header.frameSize) bytes")
        }
        let nonce = try frameNonce(prefix: header.noncePrefix, index: index, isFinal: isFinal)
        do {
            let box = try AES.GCM.SealedBox(
                nonce: nonce, ciphertext: sealed.prefix(sealed.count - tag), tag: sealed.suffix(tag))
            return try AES.GCM.open(box, using: dataKey.key, authenticating: headerBytes)
        } catch {
            throw CryptoFormatError(
                .frameAuthenticationFailed, frame: index,
                "frame \(index)\(isFinal ? " (final)" : "") does not authenticate: damaged, reordered, truncated or extended")
        }
    }

    /// Opens a whole sealed object held in memory (header and frames), checking every frame.
    public static func openAll(_ sealed: Data, masterKey: MasterKey) throws -> Data {
        let opener = try StreamOpener(header: sealed.prefix(ObjectHeader.size), masterKey: masterKey)
        let layout = try opener.layout(sealedSize: UInt64(sealed.count))
        var plain = Data(capacity: Int(layout.plaintextSize))
        let base = sealed.startIndex
        for frame in 0..<layout.frameCount {
            let start = base + Int(layout.sealedOffset(of: frame))
            let piece = sealed[start..<(start + layout.sealedLength(of: frame))]
            plain.append(try opener.open(frame: frame, sealed: piece, isFinal: layout.isFinal(frame)))
        }
        return plain
    }
}

extension StreamSealer {
    /// Seals `plaintext` whole: header followed by every frame.
    public static func sealAll(
        _ plaintext: Data, masterKey: MasterKey, frameSize: Int = ObjectHeader.defaultFrameSize
    ) throws -> Data {
        var sealer = StreamSealer(masterKey: masterKey, frameSize: frameSize)
        var out = sealer.headerBytes
        out.append(try sealer.append(plaintext))
        out.append(try sealer.finish())
        return out
    }
}
