import Foundation
import Testing

@testable import StorageService

/// The reader behind HTTP downloads (L2): whole reads hash a file the first time only.
@Suite("L2: object range reader")
struct RangeReaderTests {
    func readAll(_ reader: ObjectRangeReader) async throws -> Data {
        var data = Data()
        while let batch = try await reader.next() { data.append(batch) }
        reader.close()
        return data
    }

    @Test("L2: the first whole read of a file checks its SHA-256; later whole reads rely on frame authentication")
    func hashedOnce() async throws {
        let content = testBytes(3 * (1 << 20) + 777, seed: 41)
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let info = try await storage.store(content, name: "fw-1_20261127T000000Z.tar")
        let first = try await storage.service.openRange(info, range: 0..<info.size)
        #expect(first.checksWholeObject)
        #expect(try await readAll(first) == content)
        let second = try await storage.service.openRange(info, range: 0..<info.size)
        #expect(!second.checksWholeObject, "verified whole once: not hashed again")
        #expect(try await readAll(second) == content)
        let part = try await storage.service.openRange(info, range: 100..<5000)
        #expect(!part.checksWholeObject)
        #expect(try await readAll(part) == content[100..<5000])
    }
}
