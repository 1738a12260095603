import Foundation
import Logging
import RampartBus
import RampartProto
import RampartRPC
import RampartTesting
import Synchronization
import Testing
import ZeroMQ

/// The executors that keep a request on the socket thread that has it (docs/decisions.md, "Sockets and
/// blocking calls live on dedicated threads"): a broker, one service instance and a client in this
/// process, over real ZeroMQ sockets on loopback tcp.
@Suite("Bus: socket-thread executors", .serialized)
struct ExecutorTests {
    typealias Method = RPCMethod<Rampart_Inventory_V1_GetDeviceRequest, Rampart_Inventory_V1_DeviceResponse>
    static func method(_ name: String) -> Method { Method(service: "test", name: "rampart.test.v1.Test/" + name, policy: .read) }
    static let echo = method("Echo")
    static let hold = method("Hold")
    static let release = method("Release")
    static let block = method("Block")
    static let unblock = method("Unblock")

    /// Opens (once) and remembers which requests have been let go.
    final class Gate: Sendable {
        private let opened = Mutex<[CheckedContinuation<Void, Never>]?>([])
        func wait() async {
            await withCheckedContinuation { continuation in
                let now = opened.withLock { waiting -> Bool in
                    guard waiting != nil else { return true }
                    waiting!.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        /// Requests waiting now.
        var waiting: Int { opened.withLock { $0?.count ?? 0 } }
        func open() {
            let waiting = opened.withLock { waiting in
                defer { waiting = nil }
                return waiting ?? []
            }
            for continuation in waiting { continuation.resume() }
        }
    }

    /// What the test methods answer: a device named `name`.
    static func response(named name: String) -> Rampart_Inventory_V1_DeviceResponse {
        .with { $0.device.name = name }
    }

    /// Runs `body` with a broker and one instance of service "test" (Echo, Hold until Release).
    func withBus(_ body: @Sendable (BusClient, Gate) async throws -> Void) async throws {
        let endpoint = "tcp://127.0.0.1:\(FreePort.next())"
        var logger = Logger(label: "executor-tests")
        logger.logLevel = .error
        let gate = Gate()
        var router = ServiceRouter(
            serviceName: "test", policy: AccessPolicy([Self.echo, Self.hold, Self.release, Self.block, Self.unblock]))
        // Block holds its thread (a semaphore, no await) until Unblock: on the socket thread that would
        // stop the instance from receiving Unblock at all.
        let blocked = DispatchSemaphore(value: 0)
        router.register(Self.block, offSocketThread: true) { (_: Rampart_Inventory_V1_GetDeviceRequest, _) in
            // Bounded, so a lost Unblock fails the test instead of holding a pool thread for good.
            let released = blocked.wait(timeout: .now() + 30) == .success
            return Self.response(named: released ? "unblocked" : "never unblocked")
        }
        router.register(Self.unblock) { (_: Rampart_Inventory_V1_GetDeviceRequest, _) in
            blocked.signal()
            return Rampart_Inventory_V1_DeviceResponse()
        }
        router.register(Self.echo) { (request: Rampart_Inventory_V1_GetDeviceRequest, _) in
            Self.response(named: request.device)
        }
        router.register(Self.hold) { (request: Rampart_Inventory_V1_GetDeviceRequest, _) in
            await gate.wait()
            return Self.response(named: "held \(request.device)")
        }
        router.register(Self.release) { (_: Rampart_Inventory_V1_GetDeviceRequest, _) in
            gate.open()
            return Rampart_Inventory_V1_DeviceResponse()
        }
        let broker = Broker(endpoints: [endpoint], security: .plain, logger: logger)
        // The default heartbeat (2.5 s, dropped after 7.5 s of silence): a CI run with every suite at once
        // once starved these threads past the 0.75 s a 250 ms heartbeat allows, and the broker dropped the
        // instance with a request on it.
        let configuration = ServiceHost.Configuration(
            service: "test", brokerEndpoint: endpoint, security: .plain, instanceId: "test-1")
        let host = ServiceHost(configuration: configuration, router: router, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await broker.run() }
            group.addTask { try await host.run() }
            let client = BusClient(endpoint: endpoint, security: .plain, caller: "executor-tests")
            defer { client.close() }
            var ready = false
            for _ in 0..<200 where !ready {
                ready = (try? await echo(client, "ping")) == "ping"
                if !ready { try await Task.sleep(for: .milliseconds(25)) }
            }
            #expect(ready, "the test service never answered")
            try await body(client, gate)
            group.cancelAll()
        }
    }

    func call(_ client: BusClient, _ method: Method, _ device: String) async throws -> String {
        var request = Rampart_Inventory_V1_GetDeviceRequest()
        request.device = device
        let response = try await client.call(method, request, timeout: .seconds(10))
        return response.device.name
    }

    func echo(_ client: BusClient, _ device: String) async throws -> String {
        try await call(client, Self.echo, device)
    }

    /// Starts `waiting`, has the instance answer 20 echoes while it waits, then lets it go with `letGo`.
    func answersWhileOneWaits(_ client: BusClient, waiting: Method, letGo: Method, before: () async throws -> Void)
        async throws -> String
    {
        let pending = Task { try await call(client, waiting, "fw-1") }
        try await before()
        for index in 0..<20 { #expect(try await echo(client, "e\(index)") == "e\(index)") }
        _ = try await call(client, letGo, "")
        return try await pending.value
    }

    @Test("a handler that suspends goes on off the socket thread: the instance answers others meanwhile")
    func suspendedHandlerDoesNotHoldTheSocket() async throws {
        try await withBus { client, gate in
            // Hold suspends in its first slice (on the socket thread) and then waits in the pool; Release,
            // answered without suspending, lets it go.
            let answer = try await answersWhileOneWaits(client, waiting: Self.hold, letGo: Self.release) {
                for _ in 0..<2000 where gate.waiting == 0 { try await Task.sleep(for: .milliseconds(10)) }
                #expect(gate.waiting == 1)
            }
            #expect(answer == "held fw-1")
        }
    }

    @Test("a handler registered offSocketThread that blocks its thread leaves the instance serving")
    func offSocketThreadHandler() async throws {
        try await withBus { client, _ in
            let answer = try await answersWhileOneWaits(client, waiting: Self.block, letGo: Self.unblock) {}
            #expect(answer == "unblocked")
        }
    }

    @Test("concurrent requests that answer without suspending all get their own answer")
    func manyInlineRequests() async throws {
        try await withBus { client, _ in
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<500 {
                    group.addTask { try await echo(client, "d\(index)") == "d\(index)" }
                }
                for try await matched in group { #expect(matched) }
            }
        }
    }

    @Test("a caller preferring BusClient.executor runs on the client's one thread and gets every reply")
    func callerOnClientThread() async throws {
        try await withBus { client, _ in
            let threads = try await Task(executorPreference: client.executor) { () async throws -> Set<UInt> in
                var threads = Set<UInt>()
                for index in 0..<200 {
                    #expect(try await echo(client, "c\(index)") == "c\(index)")
                    threads.insert(UInt(pthread_self()))
                }
                return threads
            }.value
            #expect(threads.count == 1, "resumed on \(threads.count) threads")
        }
    }

    @Test("after BusClient.close, tasks preferring its executor still run (to CANCELLED), none is stranded")
    func executorAfterClose() async throws {
        // A broker that never answers, so the call below waits for its answer; the test sees its request arrive.
        let endpoint = "tcp://127.0.0.1:\(FreePort.next())"
        let silent = try ZMQSocket(.router)
        defer { silent.close() }
        try silent.bind(endpoint)
        let client = BusClient(endpoint: endpoint, security: .plain)
        let executor = client.executor
        let waiting = Task(executorPreference: executor) {
            await client.send(service: "test", method: Self.echo.name, payload: Data(), deadline: unixMillis() + 30_000)
        }
        // Closed while the call waits: once its request has reached the broker.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while try silent.receive(dontWait: true) == nil {
            try #require(clock.now < deadline, "the request never reached the broker")
            try await Task.sleep(for: .milliseconds(5))
        }
        client.close()
        #expect(await waiting.value.header.status == .cancelled)
        // Enqueued after the loop ended: handed to the global executor.
        let late = await Task(executorPreference: executor) {
            await client.send(service: "test", method: Self.echo.name, payload: Data(), deadline: unixMillis() + 30_000)
        }.value
        #expect(late.header.status == .cancelled)
    }
}
