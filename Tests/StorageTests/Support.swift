import Crypto
import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBus
import RampartCrypto
import RampartProto
import RampartRPC
import RampartTesting
import SwiftProtobuf
import Testing

@testable import StorageService

/// A storage service on a fresh database and a fresh folder, called through its router.
struct StorageHarness {
    let directory: String
    let connectionString: String
    let pool: PostgresPool
    let service: StorageService
    let router: ServiceRouter
    static let logger = Logger(label: "storage-tests")

    /// A new harness; `directory`/`connectionString` reuse another's (a second instance or a restart).
    static func make(sharing other: StorageHarness? = nil, frameSize: Int = ObjectHeader.defaultFrameSize) throws
        -> StorageHarness
    {
        let directory = other?.directory ?? NSTemporaryDirectory() + "rampart-storage-\(UUID().uuidString.prefix(8))"
        let connectionString = try other?.connectionString ?? TestDatabase.create()
        if other == nil {
            let connection = try PostgresConnection(connectionString: connectionString)
            try StorageService.migrate(connection: connection, logger: logger)
        }
        let key = try MasterKey.loadOrCreate(at: directory + "/master.key")
        let pool = PostgresPool(connectionString: connectionString, size: 4, logger: logger)
        var configuration = StorageConfiguration(directory: directory)
        configuration.frameSize = frameSize
        let service = StorageService(configuration: configuration, pool: pool, masterKey: key, logger: logger)
        try service.prepareDirectories()
        return StorageHarness(
            directory: directory, connectionString: connectionString, pool: pool, service: service,
            router: service.router())
    }

    /// Calls `method` (`StorageAPI.beginUpload`) and decodes the answer; throws the RPCError of a failed call.
    func call<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws -> Response {
        var header = Rampart_Bus_V1_RequestHeader()
        header.requestID = UInt64.random(in: 1...UInt64.max)
        header.method = method.name
        header.metadata = ["caller": "storage-tests"]
        let (reply, payload) = await router.handle(
            header: header, payload: try request.serializedData(), instanceId: "test", logger: Self.logger)
        guard reply.status == .ok else { throw RPCError(reply.status, reply.message) }
        return try Response(serializedBytes: payload)
    }

    /// The status of a call expected to fail (records an issue when it succeeds).
    func failure<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, sourceLocation: SourceLocation = #_sourceLocation
    ) async -> RPCError? {
        do {
            _ = try await call(method, request)
            Issue.record("\(method.name) succeeded but should have failed", sourceLocation: sourceLocation)
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            // Decoding an unexpected success payload as Empty may throw; that is a success too.
            Issue.record("\(method.name) failed with \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    func begin(
        name: String = "fw-1_primary_20260101.tar", owner: String = "device-1", size: UInt64 = 0, key: String = ""
    ) async throws -> Rampart_Storage_V1_BeginUploadResponse {
        try await call(
            StorageAPI.beginUpload,
            Rampart_Storage_V1_BeginUploadRequest.with {
                $0.fileName = name
                $0.contentType = "application/x-tar"
                $0.owner = owner
                $0.size = size
                $0.idempotencyKey = key
            })
    }

    @discardableResult
    func chunk(_ upload: String, _ offset: Int, _ data: Data) async throws -> UInt64 {
        let response: Rampart_Storage_V1_UploadChunkResponse = try await call(
            StorageAPI.uploadChunk,
            Rampart_Storage_V1_UploadChunkRequest.with {
                $0.uploadID = upload
                $0.offset = UInt64(offset)
                $0.data = data
            })
        return response.received
    }

    func commit(_ upload: String, sha: String) async throws -> Rampart_Storage_V1_ObjectInfo {
        try await call(StorageAPI.commitUpload, Rampart_Storage_V1_CommitUploadRequest.with {
            $0.uploadID = upload
            $0.sha256 = sha
        })
    }

    /// Uploads `content` in chunks of `chunkSize` and commits it.
    func store(
        _ content: Data, chunkSize: Int = 1 << 20, name: String = "fw-1_primary_20260101.tar", owner: String = "device-1"
    ) async throws -> Rampart_Storage_V1_ObjectInfo {
        let upload = try await begin(name: name, owner: owner, size: UInt64(content.count))
        var offset = 0
        while offset < content.count {
            let end = min(content.count, offset + chunkSize)
            try await chunk(upload.uploadID, offset, content.subdata(in: offset..<end))
            offset = end
        }
        return try await commit(upload.uploadID, sha: sha256Hex(content))
    }

    func read(_ id: String, offset: Int, length: Int) async throws -> Rampart_Storage_V1_ReadObjectResponse {
        try await call(StorageAPI.readObject, Rampart_Storage_V1_ReadObjectRequest.with {
            $0.objectID = id
            $0.offset = UInt64(offset)
            $0.length = UInt32(length)
        })
    }

    /// Reads the whole object in pieces of the given sizes (cycled).
    func readAll(_ id: String, pieces: [Int]) async throws -> Data {
        var data = Data()
        var index = 0
        while true {
            let response = try await read(id, offset: data.count, length: pieces[index % pieces.count])
            data.append(response.data)
            index += 1
            if response.eof { return data }
        }
    }

    func verify(sample: UInt32 = 0) async throws -> Rampart_Storage_V1_VerifyResponse {
        try await call(StorageAPI.verify, Rampart_Storage_V1_VerifyRequest.with { $0.sample = sample })
    }

    func list(owner: String = "") async throws -> [Rampart_Storage_V1_ObjectInfo] {
        let response: Rampart_Storage_V1_ListObjectsResponse = try await call(
            StorageAPI.listObjects, Rampart_Storage_V1_ListObjectsRequest.with { $0.owner = owner })
        return response.objects
    }

    /// Every regular file under the folder, relative paths.
    func files() -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory)
        var out: [String] = []
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: directory + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                out.append(path)
            }
        }
        return out.sorted()
    }

    /// Rows of the events outbox with `topic`.
    func events(_ topic: String) throws -> [String] {
        let connection = try PostgresConnection(connectionString: connectionString)
        return try connection.query("SELECT subject FROM events.outbox WHERE topic = \(topic) ORDER BY id").map {
            try $0.decode("subject")
        }
    }

    func close() async { await pool.close() }
}

func sha256Hex(_ data: Data) -> String { SHA256.hash(data: data).hexString }

/// Deterministic pseudo-random bytes.
func testBytes(_ count: Int, seed: UInt64 = 7) -> Data {
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
