import Foundation
import Postgres
import RampartAPI
import RampartBus
import RampartCrypto
import RampartProto
import Testing

@testable import StorageService

@Suite("Storage: upload, commit, read (B6, docs/rules.md#archives)")
struct UploadReadTests {
    @Test("an object uploaded in chunks reads back byte-identical in chunks of odd sizes, with an event")
    func roundTrip() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let content = testBytes(3 * (1 << 20) + 12345)
        let info = try await storage.store(content, chunkSize: 1 << 20)
        #expect(info.objectID == sha256Hex(content))
        #expect(info.size == UInt64(content.count))
        #expect(info.keyID == storage.service.masterKey.id)
        #expect(info.createdUnixMs > 0)
        #expect(try await storage.readAll(info.objectID, pieces: [1, 65535, 65537, 1_000_003, 7]) == content)
        #expect(try await storage.readAll(info.objectID, pieces: [0]) == content)
        let stat: Rampart_Storage_V1_ObjectInfo = try await storage.call(
            StorageAPI.statObject, Rampart_Storage_V1_StatObjectRequest.with { $0.objectID = info.objectID })
        #expect(stat == info)
        #expect(try await storage.list(owner: "device-1").map(\.objectID) == [info.objectID])
        #expect(try await storage.list(owner: "someone-else").isEmpty)
        #expect(try storage.events("storage.object.stored") == [info.objectID])
        #expect(storage.files().filter { $0.hasPrefix("uploads/") }.isEmpty)
        #expect(storage.files().contains("objects/\(info.objectID.prefix(2))/\(info.objectID).obj"))
    }

    @Test("empty and tiny objects", arguments: [0, 1, 65536, 65537])
    func smallSizes(size: Int) async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let content = testBytes(size, seed: UInt64(size))
        let info = try await storage.store(content, chunkSize: 1000)
        let read = try await storage.read(info.objectID, offset: 0, length: 0)
        #expect(read.data == content)
        #expect(read.eof)
        let atEnd = try await storage.read(info.objectID, offset: size, length: 10)
        #expect(atEnd.data.isEmpty && atEnd.eof)
        #expect(await storage.failure(StorageAPI.readObject, Rampart_Storage_V1_ReadObjectRequest.with {
            $0.objectID = info.objectID
            $0.offset = UInt64(size + 1)
        })?.code == .outOfRange)
    }

    @Test("BeginUpload again with the same key after 2 chunks resumes the upload, even after a restart")
    func resume() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let content = testBytes(5 * 300_000 + 17, seed: 3)
        let piece = 300_000
        let first = try await storage.begin(size: UInt64(content.count), key: "task-1/device-1/1")
        try await storage.chunk(first.uploadID, 0, content.subdata(in: 0..<piece))
        try await storage.chunk(first.uploadID, piece, content.subdata(in: piece..<(2 * piece)))
        let again = try await storage.begin(size: UInt64(content.count), key: "task-1/device-1/1")
        #expect(again.uploadID == first.uploadID)
        #expect(again.received == UInt64(2 * piece))
        // A repeated earlier chunk is ignored.
        #expect(try await storage.chunk(first.uploadID, 0, content.subdata(in: 0..<piece)) == UInt64(2 * piece))
        // A "restarted" service (no hashes in memory) continues and recomputes the SHA-256 from the .part file.
        let restarted = try StorageHarness.make(sharing: storage)
        defer { Task { await restarted.close() } }
        let resumed = try await restarted.begin(size: UInt64(content.count), key: "task-1/device-1/1")
        #expect(resumed.uploadID == first.uploadID && resumed.received == UInt64(2 * piece))
        var offset = Int(resumed.received)
        while offset < content.count {
            let end = min(content.count, offset + piece)
            try await restarted.chunk(first.uploadID, offset, content.subdata(in: offset..<end))
            offset = end
        }
        let info = try await restarted.commit(first.uploadID, sha: sha256Hex(content))
        #expect(info.objectID == sha256Hex(content))
        #expect(try await storage.readAll(info.objectID, pieces: [777_777]) == content)
        // Committing again, or beginning again with the key, is idempotent.
        #expect(try await restarted.commit(first.uploadID, sha: sha256Hex(content)) == info)
        #expect(try await storage.begin(size: UInt64(content.count), key: "task-1/device-1/1").received == UInt64(content.count))
    }

    @Test("frames lost in a crash: the upload falls back to the frames on disk and completes")
    func lostFrames() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let content = testBytes(400_000, seed: 11)
        let upload = try await storage.begin(key: "crash")
        try await storage.chunk(upload.uploadID, 0, content.subdata(in: 0..<300_000))
        // Cut the .part file to its header plus 2 frames (as if the last writes never reached the disk).
        let part = storage.directory + "/uploads/\(upload.uploadID).part"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: part))
        try handle.truncate(atOffset: UInt64(ObjectHeader.size + 2 * (65536 + 16)))
        try handle.close()
        let again = try await storage.begin(key: "crash")
        #expect(again.received == 2 * 65536)
        try await storage.chunk(upload.uploadID, Int(again.received), content.subdata(in: Int(again.received)..<content.count))
        let info = try await storage.commit(upload.uploadID, sha: sha256Hex(content))
        #expect(try await storage.readAll(info.objectID, pieces: [1 << 20]) == content)
    }

    @Test("a wrong SHA-256 at commit is refused, the upload discarded and nothing visible")
    func wrongSha() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let content = testBytes(100_000)
        let upload = try await storage.begin()
        try await storage.chunk(upload.uploadID, 0, content)
        let error = await storage.failure(
            StorageAPI.commitUpload,
            Rampart_Storage_V1_CommitUploadRequest.with {
                $0.uploadID = upload.uploadID
                $0.sha256 = String(repeating: "ab", count: 32)
            })
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains(sha256Hex(content)) == true)
        #expect(try await storage.list().isEmpty)
        #expect(storage.files() == ["master.key"])
        #expect(try storage.events("storage.object.stored").isEmpty)
        #expect(await storage.failure(StorageAPI.uploadChunk, Rampart_Storage_V1_UploadChunkRequest.with {
            $0.uploadID = upload.uploadID
            $0.offset = 100_000
            $0.data = Data([1])
        })?.code == .notFound)
    }

    @Test("identical content is stored once; a second commit returns the existing object")
    func dedupe() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let content = testBytes(70_000, seed: 5)
        let first = try await storage.store(content, name: "a.tar")
        let second = try await storage.store(content, chunkSize: 4096, name: "b.tar")
        #expect(first == second)
        #expect(try await storage.list().count == 1)
        #expect(storage.files().filter { $0.hasSuffix(".obj") }.count == 1)
        #expect(storage.files().filter { $0.hasPrefix("uploads/") }.isEmpty)
        #expect(try storage.events("storage.object.stored").count == 1)
    }

    @Test("DeleteObject removes the row and the file, with an event")
    func delete() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let info = try await storage.store(testBytes(1000))
        let _: Rampart_Storage_V1_DeleteObjectResponse = try await storage.call(
            StorageAPI.deleteObject, Rampart_Storage_V1_DeleteObjectRequest.with { $0.objectID = info.objectID })
        #expect(try await storage.list().isEmpty)
        #expect(storage.files() == ["master.key"])
        #expect(try storage.events("storage.object.deleted") == [info.objectID])
        #expect(await storage.failure(StorageAPI.statObject, Rampart_Storage_V1_StatObjectRequest.with {
            $0.objectID = info.objectID
        })?.code == .notFound)
        #expect(await storage.failure(StorageAPI.deleteObject, Rampart_Storage_V1_DeleteObjectRequest.with {
            $0.objectID = info.objectID
        })?.code == .notFound)
    }

    @Test("AbortUpload discards the partial file")
    func abort() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let upload = try await storage.begin(key: "k")
        try await storage.chunk(upload.uploadID, 0, testBytes(200_000))
        let _: Rampart_Storage_V1_AbortUploadResponse = try await storage.call(
            StorageAPI.abortUpload, Rampart_Storage_V1_AbortUploadRequest.with { $0.uploadID = upload.uploadID })
        #expect(storage.files() == ["master.key"])
        #expect(try await storage.begin(key: "k").uploadID != upload.uploadID)
    }

    @Test("P10: an upload abandoned by a worker that died is removed with its partial file after the idle time; live ones and committed ones stay")
    func abandonedUploadsSwept() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let abandoned = try await storage.begin(key: "dead-worker")
        try await storage.chunk(abandoned.uploadID, 0, testBytes(100_000, seed: 1))
        let live = try await storage.begin(key: "live-worker")
        try await storage.chunk(live.uploadID, 0, testBytes(100_000, seed: 2))
        let kept = try await storage.store(testBytes(50_000, seed: 3))
        // A partial file no row owns (a crash between creating the file and recording the upload).
        let stray = storage.directory + "/uploads/\(UUID().uuidString.lowercased()).part"
        try Data(count: 96).write(to: URL(fileURLWithPath: stray))
        let old = Date().addingTimeInterval(-7200)
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: stray)
        try FileManager.default.setAttributes(
            [.modificationDate: old], ofItemAtPath: storage.directory + "/uploads/\(abandoned.uploadID).part")
        // The abandoned upload was last written two hours ago.
        let connection = try PostgresConnection(connectionString: storage.connectionString)
        try connection.execute(
            "UPDATE storage.uploads SET updated_at = now() - interval '2 hours' WHERE id = \(abandoned.uploadID)::uuid")

        let swept = try await storage.service.sweepAbandonedUploads(idleSeconds: 3600)
        #expect(swept.uploads == 1 && swept.strays == 1, "\(swept)")
        let parts = storage.files().filter { $0.hasPrefix("uploads/") }
        #expect(parts == ["uploads/\(live.uploadID).part"], "\(parts)")
        // The abandoned upload is gone: its id is unknown; the live one goes on and commits.
        #expect(await storage.failure(StorageAPI.uploadChunk, Rampart_Storage_V1_UploadChunkRequest.with {
            $0.uploadID = abandoned.uploadID
            $0.offset = 100_000
            $0.data = Data(count: 10)
        })?.code == .notFound)
        try await storage.chunk(live.uploadID, 100_000, testBytes(10, seed: 4))
        // The committed upload's object still reads back, and a second sweep finds nothing.
        #expect(try await storage.readAll(kept.objectID, pieces: [1 << 20]) == testBytes(50_000, seed: 3))
        let again = try await storage.service.sweepAbandonedUploads(idleSeconds: 3600)
        #expect(again.uploads == 0 && again.strays == 0)
    }
}

@Suite("Storage: encryption at rest and damage (B12, docs/rules.md#archives)")
struct AtRestTests {
    @Test("no plaintext on disk, during the upload nor after")
    func noPlaintext() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let marker = Data("PRIVATE-KEY-MARKER-d41d8cd98f00b204".utf8)
        var content = Data()
        for index in 0..<5000 { content.append(marker); content.append(Data("\(index)\n".utf8)) }
        let upload = try await storage.begin()
        try await storage.chunk(upload.uploadID, 0, content.prefix(100_000))
        func plaintextFiles() throws -> [String] {
            try storage.files().filter { path in
                let data = try Data(contentsOf: URL(fileURLWithPath: storage.directory + "/" + path))
                return data.range(of: marker) != nil || data.range(of: marker.prefix(16)) != nil
            }
        }
        #expect(try plaintextFiles().isEmpty)
        try await storage.chunk(upload.uploadID, 100_000, content.suffix(from: 100_000))
        _ = try await storage.commit(upload.uploadID, sha: sha256Hex(content))
        #expect(try plaintextFiles().isEmpty)
        // The database holds no plaintext tail either.
        let connection = try PostgresConnection(connectionString: storage.connectionString)
        let pending = try connection.query("SELECT coalesce(pending, '\\x'::bytea) AS p FROM storage.uploads")
        for row in pending {
            let bytes: Data = try row.decode("p")
            #expect(bytes.range(of: marker.prefix(16)) == nil)
        }
    }

    @Test("a flipped bit in a stored file: ReadObject fails with DATA_LOSS and Verify reports the object")
    func flippedBit() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let good = try await storage.store(testBytes(300_000, seed: 1), name: "good.tar")
        let bad = try await storage.store(testBytes(300_000, seed: 2), name: "bad.tar")
        let path = storage.directory + "/objects/\(bad.objectID.prefix(2))/\(bad.objectID).obj"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let position = ObjectHeader.size + 2 * (65536 + 16) + 100  // inside frame 2
        bytes[position] ^= 0x04
        try bytes.write(to: URL(fileURLWithPath: path))
        let error = await storage.failure(StorageAPI.readObject, Rampart_Storage_V1_ReadObjectRequest.with {
            $0.objectID = bad.objectID
            $0.offset = 2 * 65536
            $0.length = 10
        })
        #expect(error?.code == .dataLoss)
        #expect(error?.message.contains(bad.objectID) == true)
        #expect(error?.message.contains("frame 2") == true)
        // Frames before the damage still read; a read to the end fails.
        #expect(try await storage.read(bad.objectID, offset: 0, length: 1000).data == testBytes(300_000, seed: 2).prefix(1000))
        #expect(try await storage.readAll(good.objectID, pieces: [1 << 20]) == testBytes(300_000, seed: 1))
        let report = try await storage.verify()
        #expect(report.checked == 2)
        #expect(report.damaged.map(\.objectID) == [bad.objectID])
        #expect(report.damaged.first?.fileName == "bad.tar")
        #expect(report.damaged.first?.reason.contains("frame 2") == true)
    }

    @Test("a missing file is damage that Verify reports; ReadObject answers DATA_LOSS")
    func missingFile() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let info = try await storage.store(testBytes(5000))
        try FileManager.default.removeItem(atPath: storage.directory + "/objects/\(info.objectID.prefix(2))/\(info.objectID).obj")
        let report = try await storage.verify()
        #expect(report.damaged.map(\.objectID) == [info.objectID])
        #expect(report.damaged.first?.reason.contains("missing") == true)
        #expect(await storage.failure(StorageAPI.readObject, Rampart_Storage_V1_ReadObjectRequest.with {
            $0.objectID = info.objectID
        })?.code == .dataLoss)
        let sampled = try await storage.verify(sample: 1)
        #expect(sampled.checked == 1)
    }

    @Test("a truncated file (a dropped final frame) is damage")
    func truncated() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let info = try await storage.store(testBytes(200_000))
        let path = storage.directory + "/objects/\(info.objectID.prefix(2))/\(info.objectID).obj"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(ObjectHeader.size + 3 * (65536 + 16)))
        try handle.close()
        #expect(try await storage.verify().damaged.count == 1)
        #expect(await storage.failure(StorageAPI.readObject, Rampart_Storage_V1_ReadObjectRequest.with {
            $0.objectID = info.objectID
        })?.code == .dataLoss)
    }

    @Test("the master key file is created 0600; a world-readable one is refused")
    func masterKeyFile() throws {
        let storage = try StorageHarness.make()
        let path = storage.directory + "/master.key"
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        chmod(path, 0o644)
        #expect(throws: KeyFileError.self) { _ = try StorageHarness.make(sharing: storage) }
    }
}

@Suite("Storage: bad input never crashes")
struct ValidationTests {
    @Test("each malformed request gets the right code")
    func malformed() async throws {
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let begin = Rampart_Storage_V1_BeginUploadRequest.self
        for name in ["", "a/b", "..", "x\u{0}y", String(repeating: "n", count: 300)] {
            #expect(await storage.failure(StorageAPI.beginUpload, begin.with { $0.fileName = name })?.code == .invalidArgument)
        }
        #expect(await storage.failure(StorageAPI.beginUpload, begin.with {
            $0.fileName = "a.tar"
            $0.contentType = "no type"
        })?.code == .invalidArgument)
        for id in ["", "abc", String(repeating: "g", count: 64), String(repeating: "a", count: 65)] {
            #expect(await storage.failure(StorageAPI.readObject, Rampart_Storage_V1_ReadObjectRequest.with { $0.objectID = id })?.code == .invalidArgument)
            #expect(await storage.failure(StorageAPI.statObject, Rampart_Storage_V1_StatObjectRequest.with { $0.objectID = id })?.code == .invalidArgument)
            #expect(await storage.failure(StorageAPI.deleteObject, Rampart_Storage_V1_DeleteObjectRequest.with { $0.objectID = id })?.code == .invalidArgument)
        }
        #expect(await storage.failure(StorageAPI.uploadChunk, Rampart_Storage_V1_UploadChunkRequest.with { $0.uploadID = "nope" })?.code == .invalidArgument)
        #expect(await storage.failure(StorageAPI.uploadChunk, Rampart_Storage_V1_UploadChunkRequest.with {
            $0.uploadID = UUID().uuidString
        })?.code == .notFound)
        let upload = try await storage.begin()
        #expect(await storage.failure(StorageAPI.uploadChunk, Rampart_Storage_V1_UploadChunkRequest.with {
            $0.uploadID = upload.uploadID
            $0.data = Data(count: (1 << 20) + 1)
        })?.code == .invalidArgument)
        try await storage.chunk(upload.uploadID, 0, Data(count: 10))
        let wrongOffset = await storage.failure(StorageAPI.uploadChunk, Rampart_Storage_V1_UploadChunkRequest.with {
            $0.uploadID = upload.uploadID
            $0.offset = 20
            $0.data = Data(count: 10)
        })
        #expect(wrongOffset?.code == .failedPrecondition)
        #expect(wrongOffset?.message.contains("expects offset 10") == true)
        #expect(await storage.failure(StorageAPI.commitUpload, Rampart_Storage_V1_CommitUploadRequest.with {
            $0.uploadID = upload.uploadID
            $0.sha256 = "xyz"
        })?.code == .invalidArgument)
        #expect(await storage.failure(StorageAPI.readObject, Rampart_Storage_V1_ReadObjectRequest.with {
            $0.objectID = String(repeating: "a", count: 64)
        })?.code == .notFound)
        #expect(await storage.failure(StorageAPI.readObject, Rampart_Storage_V1_ReadObjectRequest.with {
            $0.objectID = String(repeating: "a", count: 64)
            $0.length = (1 << 20) + 1
        })?.code == .invalidArgument)
        #expect(await storage.failure(StorageAPI.abortUpload, Rampart_Storage_V1_AbortUploadRequest.with {
            $0.uploadID = UUID().uuidString
        })?.code == .notFound)
        // A payload that is not the request message.
        var header = Rampart_Bus_V1_RequestHeader()
        header.method = StorageAPI.beginUpload.name
        let (reply, _) = await storage.router.handle(
            header: header, payload: Data([0xff, 0xff, 0xff]), instanceId: "t", logger: StorageHarness.logger)
        #expect(reply.status == .invalidArgument)
        // A size announced then exceeded.
        let sized = try await storage.begin(size: 5)
        #expect(await storage.failure(StorageAPI.uploadChunk, Rampart_Storage_V1_UploadChunkRequest.with {
            $0.uploadID = sized.uploadID
            $0.data = Data(count: 6)
        })?.code == .failedPrecondition)
    }

    @Test("a disk-full error maps to RESOURCE_EXHAUSTED, other I/O errors to INTERNAL")
    func ioErrors() {
        #expect(FileIOError(operation: "write", path: "/x", code: ENOSPC).rpcError.code == .resourceExhausted)
        #expect(FileIOError(operation: "write", path: "/x", code: EIO).rpcError.code == .internal)
    }
}
