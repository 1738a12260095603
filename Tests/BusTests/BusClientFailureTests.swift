import Foundation
import RampartBus
import Testing

/// A bus client whose socket cannot be made or connected (an unknown transport here; the process out of
/// file descriptors in production) answers its calls at once instead of leaving them waiting.
@Suite("Bus client: a loop that cannot run fails its calls")
struct BusClientFailureTests {
    @Test("P5: calls of a client whose socket cannot connect end UNAVAILABLE with the reason, each call trying again", .timeLimit(.minutes(1)))
    func unconnectable() async throws {
        let client = BusClient(endpoint: "carrier-pigeon://nest", security: .plain, caller: "failure-tests")
        defer { client.close() }
        for attempt in 0..<3 {
            let reply = await client.send(
                service: "test", method: "rampart.test.v1.Test/Echo", payload: Data(),
                deadline: Int64(Date().timeIntervalSince1970 * 1000) + 60_000)
            #expect(reply.header.status == .unavailable, "attempt \(attempt): \(reply.header.status)")
            #expect(reply.header.message.contains("carrier-pigeon://nest"), "\(reply.header.message)")
        }
    }
}
