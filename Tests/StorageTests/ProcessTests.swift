import Crypto
import Foundation
import RampartAPI
import RampartBus
import RampartCrypto
import RampartProto
import RampartTesting
import Testing

@testable import StorageService

@Suite("Storage over the bus (real processes)")
struct StorageProcessTests {
    @Test("the storage executable uploads and reads an object through the bus")
    func overTheBus() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        let dir = NSTemporaryDirectory() + "rampart-storage-it-\(UUID().uuidString.prefix(8))"
        try system.start("storage", ["--dir", dir])
        try await system.waitUntilServing(BusProtocol.journalService)
        try await system.waitUntilServing(StorageAPI.serviceName)
        let client = system.client()
        defer { client.close() }
        do {
            let content = testBytes(2 * (1 << 20) + 4321, seed: 99)
            let begin: Rampart_Storage_V1_BeginUploadResponse = try await client.call(
                StorageAPI.beginUpload,
                Rampart_Storage_V1_BeginUploadRequest.with {
                    $0.fileName = "fw-edge_20260101.tar"
                    $0.contentType = "application/x-tar"
                    $0.owner = "fw-edge"
                    $0.size = UInt64(content.count)
                    $0.idempotencyKey = "it/fw-edge/1"
                }, service: "storage")
            var offset = 0
            while offset < content.count {
                let end = min(content.count, offset + (1 << 20))
                let _: Rampart_Storage_V1_UploadChunkResponse = try await client.call(
                    StorageAPI.uploadChunk,
                    Rampart_Storage_V1_UploadChunkRequest.with {
                        $0.uploadID = begin.uploadID
                        $0.offset = UInt64(offset)
                        $0.data = content.subdata(in: offset..<end)
                    }, service: "storage")
                offset = end
            }
            let info: Rampart_Storage_V1_ObjectInfo = try await client.call(
                StorageAPI.commitUpload,
                Rampart_Storage_V1_CommitUploadRequest.with {
                    $0.uploadID = begin.uploadID
                    $0.sha256 = sha256Hex(content)
                }, service: "storage")
            #expect(info.objectID == sha256Hex(content))
            var read = Data()
            while true {
                let piece: Rampart_Storage_V1_ReadObjectResponse = try await client.call(
                    StorageAPI.readObject,
                    Rampart_Storage_V1_ReadObjectRequest.with {
                        $0.objectID = info.objectID
                        $0.offset = UInt64(read.count)
                    }, service: "storage", idempotent: true)
                read.append(piece.data)
                if piece.eof { break }
            }
            #expect(read == content)
            let key = dir + "/master.key"
            #expect((try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? Int) == 0o600)
        } catch {
            Issue.record("logs:\n\(system.logs)")
            throw error
        }
    }

    @Test("the storage executable refuses a world-readable master key")
    func refusesReadableKey() async throws {
        let dir = NSTemporaryDirectory() + "rampart-storage-key-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir + "/master.key", contents: Data(count: 32), attributes: [.posixPermissions: 0o644])
        let result = try await ChildProcess.run(
            Binaries.path("storage"), ["--dir", dir, "--database", "host=/nonexistent dbname=x"])
        #expect(result.exitCode != 0)
        #expect(result.stderr.contains("group or others"))
    }
}
