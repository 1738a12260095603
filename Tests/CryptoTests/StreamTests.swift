import Foundation
import Testing

@testable import RampartCrypto

/// Deterministic pseudo-random bytes (so failures reproduce).
func testBytes(_ count: Int, seed: UInt64 = 42) -> Data {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[index] = UInt8(truncatingIfNeeded: state)
    }
    return Data(bytes)
}

/// Expects `body` to throw a `CryptoFormatError` and returns it.
func formatError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> CryptoFormatError? {
    do {
        try body()
        Issue.record("expected a CryptoFormatError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as CryptoFormatError {
        return error
    } catch {
        Issue.record("expected a CryptoFormatError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Splits a sealed object into its header and its frames (by the layout its length implies).
func split(_ sealed: Data, frameSize: Int) throws -> (header: Data, frames: [Data]) {
    let layout = try ObjectLayout(frameSize: frameSize, sealedSize: UInt64(sealed.count))
    let frames = (0..<layout.frameCount).map { frame -> Data in
        let start = Int(layout.sealedOffset(of: frame))
        return sealed.subdata(in: start..<(start + layout.sealedLength(of: frame)))
    }
    return (sealed.prefix(ObjectHeader.size), frames)
}

@Suite("Sealed object stream: round trips")
struct StreamRoundTripTests {
    static let frame = ObjectHeader.defaultFrameSize
    static let key = MasterKey.generate()

    @Test(
        "sealing then opening gives the plaintext back",
        arguments: [0, 1, frame - 1, frame, frame + 1, 3 * frame, 5 * 1024 * 1024 + 17])
    func roundTrip(size: Int) throws {
        let plain = testBytes(size, seed: UInt64(size))
        let sealed = try StreamSealer.sealAll(plain, masterKey: Self.key)
        let layout = try ObjectLayout(frameSize: Self.frame, sealedSize: UInt64(sealed.count))
        #expect(layout.plaintextSize == UInt64(size))
        #expect(layout.frameCount == max(1, UInt64((size + Self.frame - 1) / Self.frame)))
        #expect(layout.sealedSize == UInt64(sealed.count))
        #expect(try StreamOpener.openAll(sealed, masterKey: Self.key) == plain)
    }

    @Test("appending in pieces of odd sizes gives the same frames layout and plaintext")
    func incremental() throws {
        let plain = testBytes(3 * Self.frame + 12345)
        var sealer = StreamSealer(masterKey: Self.key)
        var sealed = sealer.headerBytes
        var position = 0
        var step = 1
        while position < plain.count {
            let end = min(plain.count, position + step)
            sealed.append(try sealer.append(plain.subdata(in: position..<end)))
            position = end
            step = step * 7 + 3
        }
        sealed.append(try sealer.finish())
        #expect(sealer.framesSealed == 4)
        #expect(try StreamOpener.openAll(sealed, masterKey: Self.key) == plain)
    }

    @Test("an empty plaintext is one final empty frame")
    func empty() throws {
        let sealed = try StreamSealer.sealAll(Data(), masterKey: Self.key)
        #expect(sealed.count == ObjectHeader.size + ObjectLayout.tagSize)
        #expect(try StreamOpener.openAll(sealed, masterKey: Self.key).isEmpty)
    }

    @Test("a frame opens on its own (random access)")
    func randomAccess() throws {
        let plain = testBytes(4 * 1000 + 10)
        let sealed = try StreamSealer.sealAll(plain, masterKey: Self.key, frameSize: 1000)
        let (header, frames) = try split(sealed, frameSize: 1000)
        let opener = try StreamOpener(header: header, masterKey: Self.key)
        #expect(try opener.open(frame: 2, sealed: frames[2], isFinal: false) == plain.subdata(in: 2000..<3000))
        #expect(try opener.open(frame: 4, sealed: frames[4], isFinal: true) == plain.subdata(in: 4000..<4010))
        let layout = try opener.layout(sealedSize: UInt64(sealed.count))
        #expect(layout.frames(coveringOffset: 999, length: 2) == 0...1)
        #expect(layout.frames(coveringOffset: 4005, length: 100) == 4...4)
        #expect(layout.frames(coveringOffset: 4010, length: 100) == 4...4)
    }

    @Test("a sealer resumed from its sealed pending tail continues the same object")
    func resume() throws {
        let plain = testBytes(2500)
        var first = StreamSealer(masterKey: Self.key, frameSize: 1000)
        var sealed = first.headerBytes
        sealed.append(try first.append(plain.prefix(1700)))
        #expect(first.framesSealed == 1)
        #expect(first.pending.count == 700)
        var second = try StreamSealer(
            resuming: first.headerBytes, masterKey: Self.key, framesSealed: first.framesSealed,
            sealedPending: first.sealedPending())
        #expect(second.plaintextCount == 1700)
        sealed.append(try second.append(plain.suffix(from: 1700)))
        sealed.append(try second.finish())
        #expect(try StreamOpener.openAll(sealed, masterKey: Self.key) == plain)
        // The tail is bound to its frame count.
        #expect(throws: CryptoFormatError.self) {
            _ = try StreamSealer(
                resuming: first.headerBytes, masterKey: Self.key, framesSealed: 2, sealedPending: first.sealedPending())
        }
    }

    @Test("with the total size known, a full non-last frame is sealed at once; the last one stays final")
    func knownTotalSize() throws {
        for size in [0, 999, 1000, 1001, 3000, 3001] {
            let plain = testBytes(size)
            var sealer = StreamSealer(masterKey: Self.key, frameSize: 1000)
            var sealed = sealer.headerBytes
            var position = 0
            while position < plain.count {
                let end = min(plain.count, position + 1000)
                sealed.append(try sealer.append(plain.subdata(in: position..<end), totalSize: UInt64(size)))
                position = end
                // Every full frame before the end is sealed: the tail is never a full non-last frame.
                if position < size { #expect(sealer.pending.isEmpty) }
            }
            #expect(sealer.pending.count == (size == 0 ? 0 : (size - 1) % 1000 + 1))
            sealed.append(try sealer.finish())
            #expect(sealed.count == (try StreamSealer.sealAll(plain, masterKey: Self.key, frameSize: 1000)).count)
            #expect(try StreamOpener.openAll(sealed, masterKey: Self.key) == plain)
            #expect(sealer.framesSealed == max(1, UInt64((size + 999) / 1000)))
        }
    }

    @Test("nonce prefixes and data keys differ across objects")
    func noncesDiffer() throws {
        var prefixes = Set<Data>()
        var wrapped = Set<Data>()
        for _ in 0..<200 {
            let header = StreamSealer(masterKey: Self.key).header
            prefixes.insert(header.noncePrefix)
            wrapped.insert(header.wrappedKey)
        }
        #expect(prefixes.count == 200)
        #expect(wrapped.count == 200)
        let a = try StreamSealer.sealAll(Data("same".utf8), masterKey: Self.key)
        let b = try StreamSealer.sealAll(Data("same".utf8), masterKey: Self.key)
        #expect(a.suffix(20) != b.suffix(20))
    }
}

@Suite("Sealed object stream: tampering is detected")
struct TamperTests {
    static let key = MasterKey.generate()
    static let frameSize = 64

    func sealed(_ size: Int = 300) throws -> Data {
        try StreamSealer.sealAll(testBytes(size), masterKey: Self.key, frameSize: Self.frameSize)
    }

    @Test("every single-bit flip of a small sealed object is detected", arguments: [64, 65536])
    func everyBitFlip(frameSize: Int) throws {
        let original = try StreamSealer.sealAll(testBytes(300), masterKey: Self.key, frameSize: frameSize)
        var undetected: [Int] = []
        for bit in 0..<(original.count * 8) {
            var damaged = original
            damaged[bit / 8] ^= UInt8(1 << (bit % 8))
            if (try? StreamOpener.openAll(damaged, masterKey: Self.key)) != nil { undetected.append(bit) }
        }
        #expect(undetected.isEmpty, "bits flipped without detection: \(undetected.prefix(20))")
    }

    @Test("swapped frames fail, naming the frame")
    func swapped() throws {
        let (header, frames) = try split(try sealed(), frameSize: Self.frameSize)
        var reordered = frames
        reordered.swapAt(1, 2)
        let error = formatError { _ = try StreamOpener.openAll(header + reordered.reduce(Data(), +), masterKey: Self.key) }
        #expect(error?.code == .frameAuthenticationFailed)
        #expect(error?.frame == 1)
        #expect(error?.description.contains("frame 1") == true)
    }

    @Test("a truncated last frame fails")
    func truncatedLast() throws {
        let data = try sealed()
        #expect(formatError { _ = try StreamOpener.openAll(data.dropLast(1), masterKey: Self.key) } != nil)
        #expect(formatError { _ = try StreamOpener.openAll(data.dropLast(17), masterKey: Self.key) } != nil)
    }

    @Test("dropping the final frame fails (the new last frame is not final)")
    func droppedFinal() throws {
        let (header, frames) = try split(try sealed(320), frameSize: Self.frameSize)  // 5 full frames + final
        let error = formatError {
            _ = try StreamOpener.openAll(header + frames.dropLast().reduce(Data(), +), masterKey: Self.key)
        }
        #expect(error?.code == .frameAuthenticationFailed)
        #expect(error?.frame == UInt64(frames.count - 2))
    }

    @Test("an appended frame fails (the old final frame is no longer last)")
    func appended() throws {
        let (header, frames) = try split(try sealed(320), frameSize: Self.frameSize)
        let error = formatError {
            _ = try StreamOpener.openAll(header + frames.reduce(Data(), +) + frames[0], masterKey: Self.key)
        }
        #expect(error != nil)
    }

    @Test("a frame from another object with the same key fails")
    func foreignFrame() throws {
        let (header, frames) = try split(try sealed(), frameSize: Self.frameSize)
        let (_, other) = try split(try sealed(), frameSize: Self.frameSize)
        var mixed = frames
        mixed[0] = other[0]
        #expect(formatError { _ = try StreamOpener.openAll(header + mixed.reduce(Data(), +), masterKey: Self.key) } != nil)
    }

    @Test("the wrong master key is refused before any frame")
    func wrongMasterKey() throws {
        let data = try sealed()
        let error = formatError { _ = try StreamOpener.openAll(data, masterKey: MasterKey.generate()) }
        #expect(error?.code == .wrongMasterKey)
        // A different key that claims the same id (forged header) fails at unwrapping.
        var forged = data
        let otherKey = MasterKey.generate()
        forged.replaceSubrange(9..<25, with: Data(otherKey.id.utf8))
        #expect(formatError { _ = try StreamOpener.openAll(forged, masterKey: otherKey) }?.code == .keyUnwrapFailed)
    }

    @Test("a bad magic or version is named")
    func badMagic() throws {
        var data = try sealed()
        data[0] = UInt8(ascii: "X")
        #expect(formatError { _ = try StreamOpener.openAll(data, masterKey: Self.key) }?.code == .badMagic)
        data = try sealed()
        data[8] = 9
        #expect(formatError { _ = try StreamOpener.openAll(data, masterKey: Self.key) }?.code == .unsupportedVersion)
    }

    @Test("descriptions never hold key material")
    func noKeyMaterial() throws {
        let key = MasterKey.generate()
        #expect(key.description == "MasterKey(id: \(key.id))")
        #expect(DataKey.generate().description == "DataKey(redacted)")
        let raw = key.key.withUnsafeBytes { Data($0) }
        #expect(!"\(key)".contains(raw.hexString))
        #expect(!String(reflecting: key).contains(raw.hexString))
    }
}

@Suite("Master key file")
struct MasterKeyFileTests {
    func temporaryPath() -> String {
        NSTemporaryDirectory() + "rampart-crypto-\(UUID().uuidString)/keys/master.key"
    }

    @Test("created on first use with mode 0600, then the same key is loaded")
    func createThenLoad() throws {
        let path = temporaryPath()
        let created = try MasterKey.loadOrCreate(at: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((attributes[.size] as? Int) == 32)
        let loaded = try MasterKey.loadOrCreate(at: path)
        #expect(loaded.id == created.id)
        #expect(created.id.count == 16)
        let sealed = try StreamSealer.sealAll(Data("secret".utf8), masterKey: created)
        #expect(try StreamOpener.openAll(sealed, masterKey: loaded) == Data("secret".utf8))
    }

    @Test("the key id is the first 16 hex digits of SHA-256 of the key")
    func keyId() throws {
        let key = try MasterKey(bytes: [UInt8](repeating: 0, count: 32))
        // sha256 of 32 zero bytes: 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925
        #expect(key.id == "66687aadf862bd77")
    }

    @Test("a key file that group or others may read is refused", arguments: [0o644, 0o640, 0o604, 0o660])
    func permissionsRefused(mode: Int) throws {
        let path = temporaryPath()
        _ = try MasterKey.loadOrCreate(at: path)
        chmod(path, mode_t(mode))
        let error = #expect(throws: KeyFileError.self) { _ = try MasterKey.loadOrCreate(at: path) }
        #expect(error?.description.contains("chmod 600") == true)
    }

    @Test("a key file of the wrong size is refused")
    func wrongSize() throws {
        let path = temporaryPath()
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path, contents: Data(count: 31), attributes: [.posixPermissions: 0o600])
        let error = #expect(throws: KeyFileError.self) { _ = try MasterKey.loadOrCreate(at: path) }
        #expect(error?.description.contains("31 bytes") == true)
    }

    @Test("instances starting at once agree on one key")
    func concurrentCreation() async throws {
        let path = temporaryPath()
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 { group.addTask { try MasterKey.loadOrCreate(at: path).id } }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(ids.count == 1)
    }
}
