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

    @Test("L2: ranges across batch boundaries come out exact while the next batch is read ahead; closing mid-read ends it")
    func rangesAcrossBatches() async throws {
        let content = testBytes(5 * (1 << 20) + 12_345, seed: 42)
        let storage = try StorageHarness.make()
        defer { Task { await storage.close() } }
        let info = try await storage.store(content, name: "fw-1_20261127T000000Z.tar")
        let size = UInt64(content.count)
        let mib: UInt64 = 1 << 20
        let ranges: [Range<UInt64>] = [
            0..<size, 1..<(size - 1), (mib - 1)..<(3 * mib + 1), 65_535..<65_537, (size - 10)..<size, (2 * mib)..<(4 * mib),
        ]
        for range in ranges {
            let reader = try await storage.service.openRange(info, range: range)
            #expect(try await readAll(reader) == content[Int(range.lowerBound)..<Int(range.upperBound)], "\(range)")
        }
        // Closed after the first batch, while the second one's sealed bytes are being read ahead.
        let reader = try await storage.service.openRange(info, range: 0..<size)
        let first = try await reader.next()
        #expect(first == content.prefix(Int(mib)))
        reader.close()
        #expect(try await reader.next() == nil)
        // The file is still readable afterwards (the read ahead ended on its own descriptor).
        let again = try await storage.service.openRange(info, range: 0..<size)
        #expect(try await readAll(again) == content)
    }
}
