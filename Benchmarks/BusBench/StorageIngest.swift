import Crypto
import Foundation
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC
import SwiftProtobuf

/// Uploads one large object to a running `storage` through the bus in 1 MiB chunks (the backup
/// worker's path) and reads it back, timing both.
enum StorageIngest {
    static func run(bus: String, mebibytes: Int) async throws {
        let client = BusClient(endpoint: bus, security: try BusBench.systemSecurity(), caller: "bench")
        defer { client.close() }
        let chunk = 1 << 20
        var generator = SystemRandomNumberGenerator()
        // Incompressible content, made once; each chunk differs by its index.
        let block = Data((0..<chunk).map { _ in UInt8.random(in: 0...255, using: &generator) })
        func piece(_ index: Int) -> Data {
            var data = block
            withUnsafeBytes(of: UInt64(index).bigEndian) { data.replaceSubrange(0..<8, with: $0) }
            return data
        }
        var hash = SHA256()
        for index in 0..<mebibytes { hash.update(data: piece(index)) }
        let digest = hash.finalize().map { String(format: "%02x", $0) }.joined()

        func call<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws -> Response {
            try await client.call(method, request, timeout: .seconds(120))
        }
        let start = DispatchTime.now().uptimeNanoseconds
        var begin = Rampart_Storage_V1_BeginUploadRequest()
        begin.fileName = "bench.tar"
        begin.contentType = "application/x-tar"
        begin.owner = "bench"
        begin.size = UInt64(mebibytes * chunk)
        begin.idempotencyKey = UUID().uuidString
        let upload: Rampart_Storage_V1_BeginUploadResponse = try await call(StorageAPI.beginUpload, begin)
        for index in 0..<mebibytes {
            var put = Rampart_Storage_V1_UploadChunkRequest()
            put.uploadID = upload.uploadID
            put.offset = UInt64(index * chunk)
            put.data = piece(index)
            let _: Rampart_Storage_V1_UploadChunkResponse = try await call(StorageAPI.uploadChunk, put)
        }
        var commit = Rampart_Storage_V1_CommitUploadRequest()
        commit.uploadID = upload.uploadID
        commit.sha256 = digest
        let _: Rampart_Storage_V1_ObjectInfo = try await call(StorageAPI.commitUpload, commit)
        let ingest = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        let readStart = DispatchTime.now().uptimeNanoseconds
        var offset: UInt64 = 0
        while true {
            var read = Rampart_Storage_V1_ReadObjectRequest()
            read.objectID = digest
            read.offset = offset
            read.length = UInt32(chunk)
            let response: Rampart_Storage_V1_ReadObjectResponse = try await call(StorageAPI.readObject, read)
            offset += UInt64(response.data.count)
            if response.eof || response.data.isEmpty { break }
        }
        let readSeconds = Double(DispatchTime.now().uptimeNanoseconds - readStart) / 1e9
        let megabytes = Double(mebibytes * chunk) / 1_048_576
        print(String(format: "storage ingest over the bus: %d MiB in %.2f s = %.0f MiB/s (seal + SHA-256 + write + commit)", mebibytes, ingest, megabytes / ingest))
        print(String(format: "storage read back over the bus: %.2f s = %.0f MiB/s (open + authenticate + SHA-256 at the end)", readSeconds, megabytes / readSeconds))
    }
}

typealias SwiftProtobufMessage = SwiftProtobuf.Message
