import Foundation
import Logging
import RampartBus
import RampartProto
import RampartRPC
import Synchronization
import ZeroMQ

/// `bus-bench`: round trips of a small request through the broker to a service and back, next to a
/// direct DEALER<->ROUTER round trip with libzmq in the same run (docs/benchmarks.md).
///   bus-bench [--requests N] [--pipeline K]
///   bus-bench --storage-ingest BUS [--size-mib N]   (dev/bench-storage.sh)
///   bus-bench --sign-links N                        (signing and checking download links, L2)
///   bus-bench --codec N                             (CPU time of the header coding of one round trip)
///   bus-bench --restore-leases BUS [--decisions N] [--requesters K] [--cpu NAME=PID]…
///                                                   (restore lease decisions; dev/bench-restore.sh)
@main
struct BusBench {
    /// The benchmark's echo method (served by this process only; not a Rampart service).
    static let echo = RPCMethod<Rampart_Inventory_V1_GetDeviceRequest, Rampart_Inventory_V1_DeviceResponse>(
        service: "bench", name: "rampart.bench.v1.Echo/Get", policy: .read)

    static func main() async throws {
        var requests = 20_000
        var pipeline = 64
        var ingestBus: String?
        var ingestMiB = 200
        var signLinks: Int?
        var codec: Int?
        var restoreBus: String?
        var decisions = 20_000
        var requesters = 100
        var watch: [(name: String, pid: Int32)] = []
        var curve = false
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--curve": curve = true
            case "--requests": requests = Int(arguments.next() ?? "") ?? requests
            case "--pipeline": pipeline = Int(arguments.next() ?? "") ?? pipeline
            case "--storage-ingest": ingestBus = arguments.next()
            case "--size-mib": ingestMiB = Int(arguments.next() ?? "") ?? ingestMiB
            case "--sign-links": signLinks = Int(arguments.next() ?? "") ?? 10_000
            case "--codec": codec = Int(arguments.next() ?? "") ?? 200_000
            case "--restore-leases": restoreBus = arguments.next()
            case "--decisions": decisions = Int(arguments.next() ?? "") ?? decisions
            case "--requesters": requesters = Int(arguments.next() ?? "") ?? requesters
            case "--cpu":  // NAME=PID: report that process's CPU time per phase
                let parts = (arguments.next() ?? "").split(separator: "=", maxSplits: 1)
                if parts.count == 2, let pid = Int32(parts[1]) { watch.append((String(parts[0]), pid)) }
            default:
                FileHandle.standardError.write(
                    Data(
                        ("usage: bus-bench [--requests N] [--pipeline K] [--curve] | --storage-ingest BUS [--size-mib N] | --sign-links N | --codec N"
                            + " | --restore-leases BUS [--decisions N] [--requesters K] [--cpu NAME=PID]...\n").utf8))
                exit(64)
            }
        }
        if let signLinks {
            try LinkSigning.run(count: signLinks)
            return
        }
        if let codec {
            CodecCost.run(count: max(1, codec))
            return
        }
        if let restoreBus {
            var options = RestoreLeases.Options(bus: restoreBus)
            options.decisions = max(1, decisions)
            options.requesters = max(1, requesters)
            options.watch = watch
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = .warning
                return handler
            }
            try await RestoreLeases.run(options)
            return
        }
        if let ingestBus {
            try await StorageIngest.run(bus: ingestBus, mebibytes: ingestMiB)
            return
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        var request = Rampart_Inventory_V1_GetDeviceRequest()
        request.device = "fw-edge-1"
        let payload = FrameCodec.serialize(request)
        print("payload \(payload.count) bytes, \(requests) requests, libzmq \(ZMQContext.version), \(ProcessInfo.processInfo.activeProcessorCount) cores")

        let port = Int.random(in: 30000...39999)
        let endpoint = "tcp://127.0.0.1:\(port)"
        let logger = Logger(label: "bench")
        // --curve: the broker, the service and the client authenticate and encrypt as in production.
        var brokerSecurity = BrokerSecurity.plain
        var serviceSecurity = BusSecurity.plain
        var clientSecurity = BusSecurity.plain
        var zap: ZAPHandler?
        if curve {
            let folder = try KeyFolder.initialize(at: NSTemporaryDirectory() + "bus-bench-keys-\(UUID().uuidString.prefix(8))")
            let authorized = try AuthorizedKeysSource(path: folder.authorizedKeysPath, logger: logger)
            zap = ZAPHandler(logger: logger) { BusAdmission.decide($0, keys: authorized.current) }
            try zap?.start()
            brokerSecurity = .curve(secretKey: try BusKeyFile.load(folder.brokerKeyPath).keys.secretKey, authorized: authorized)
            serviceSecurity = .curve(try BusKeyFile.load(folder.keyPath(role: .service, name: "inventory")))
            clientSecurity = .curve(try BusKeyFile.load(folder.keyPath(role: .admin, name: "admin")))
            print("CURVE on: broker, service and client authenticate and encrypt")
        }
        defer { zap?.stop() }
        let broker = Broker(endpoints: [endpoint], security: brokerSecurity, logger: logger)
        var router = ServiceRouter(serviceName: "bench", policy: AccessPolicy([Self.echo]))
        router.register(Self.echo) { (request: Rampart_Inventory_V1_GetDeviceRequest, _) in
            var response = Rampart_Inventory_V1_DeviceResponse()
            response.device.name = request.device
            return response
        }
        var host = ServiceHost.Configuration(
            service: "bench", brokerEndpoint: endpoint, security: serviceSecurity, instanceId: "bench-1")
        host.capacity = UInt32(max(pipeline, 1))
        let service = ServiceHost(configuration: host, router: router, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await broker.run() }
            group.addTask { try await service.run() }
            let client = BusClient(endpoint: endpoint, security: clientSecurity, caller: "bench")
            defer { client.close() }
            try await waitForService(client)

            // Lock-step, in rounds that take turns: the direct floor; the caller on the client's own socket
            // thread (`BusClient.executor`), as a caller making one call after another can be; and the caller
            // on Swift's global pool, as most callers are. Taking turns keeps the ratio honest on a machine
            // whose speed drifts (a VM): each round's ratio compares runs seconds apart.
            let direct = try DirectEcho(payload: payload)
            defer { direct.stop() }
            let forwarded = try DirectEcho(payload: payload, throughForwarder: true)
            defer { forwarded.stop() }
            let rounds = 10
            var directAll = Measurement(latencies: [], seconds: 0)
            var loopAll = directAll
            var poolAll = directAll
            var forwardedAll = directAll
            var loopRatios: [Double] = []
            var poolRatios: [Double] = []
            var forwardedRatios: [Double] = []
            for round in 0..<rounds {
                let count = requests / rounds + (round < requests % rounds ? 1 : 0)
                let d = try direct.lockStep(count)
                let f = try forwarded.lockStep(count)
                forwardedAll.add(f)
                forwardedRatios.append(f.mean / d.mean)
                let l = try await Task(executorPreference: client.executor) {
                    try await brokeredLockStep(client, requests: count, payload: payload)
                }.value
                let p = try await brokeredLockStep(client, requests: count, payload: payload)
                directAll.add(d)
                loopAll.add(l)
                poolAll.add(p)
                loopRatios.append(l.mean / d.mean)
                poolRatios.append(p.mean / d.mean)
            }
            report("direct DEALER<->ROUTER, lock-step", directAll)
            report("through a bare forwarding thread (libzmq only), lock-step", forwardedAll)
            printRatio("forwarder", forwardedAll, directAll, forwardedRatios)
            report("through the broker, lock-step, caller on the client's thread", loopAll)
            printRatio("brokered", loopAll, directAll, loopRatios)
            report("through the broker, lock-step, caller on the global pool", poolAll)
            printRatio("brokered", poolAll, directAll, poolRatios)

            let pipelined = try await brokeredPipelined(client, requests: requests, inFlight: pipeline, payload: payload)
            report("through the broker, \(pipeline) in flight", pipelined)
            group.cancelAll()
        }
    }

    struct Measurement {
        var latencies: [Double]  // microseconds
        var seconds: Double
        var mean: Double { latencies.reduce(0, +) / Double(latencies.count) }
        mutating func add(_ other: Measurement) {
            latencies += other.latencies
            seconds += other.seconds
        }
        func percentile(_ p: Double) -> Double {
            let sorted = latencies.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
    }

    static func report(_ name: String, _ m: Measurement) {
        print(
            String(
                format: "%@: %.0f requests/s, mean %.1f µs, p50 %.1f µs, p99 %.1f µs, max %.1f µs", name,
                Double(m.latencies.count) / m.seconds, m.mean, m.percentile(0.5), m.percentile(0.99),
                m.latencies.max() ?? 0))
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    static func printRatio(_ what: String, _ measured: Measurement, _ direct: Measurement, _ rounds: [Double]) {
        let sorted = rounds.sorted()
        print(
            String(
                format: "  ratio %@/direct (mean): %.2fx; by round: median %.2fx, %.2f–%.2fx", what,
                measured.mean / direct.mean, sorted[sorted.count / 2], sorted.first ?? 0, sorted.last ?? 0))
    }

    /// The floor: a DEALER and a ROUTER echo thread over loopback tcp, one request at a time.
    final class DirectEcho {
        private let dealer: ZMQSocket
        private let header: Rampart_Bus_V1_RequestHeader
        private let payload: Data

        /// Starts the echo thread and connects the dealer to it, or, `throughForwarder`, to a thread that
        /// only passes frames on (ROUTER in, DEALER out, `zmq_poll`): the floor of any broker in between.
        init(payload: Data, throughForwarder: Bool = false) throws {
            let echoPort = Int.random(in: 40000...44999)
            let forwarderPort = Int.random(in: 45000...49999)
            let ready = DispatchSemaphore(value: 0)
            // A message whose last frame is empty ends the threads it passes (payloads are never empty here).
            let echo = Thread {
                guard let router = try? ZMQSocket(.router) else { return }
                try? router.bind("tcp://127.0.0.1:\(echoPort)")
                ready.signal()
                while let frames = try? router.receive(), frames.last?.isEmpty == false {
                    _ = try? router.send(frames)
                }
            }
            echo.start()
            ready.wait()
            if throughForwarder {
                let forwarder = Thread {
                    guard let front = try? ZMQSocket(.router), let back = try? ZMQSocket(.dealer) else { return }
                    try? front.bind("tcp://127.0.0.1:\(forwarderPort)")
                    try? back.connect("tcp://127.0.0.1:\(echoPort)")
                    ready.signal()
                    var poller = ZMQPoller()
                    poller.add(front)
                    poller.add(back)
                    while (try? poller.poll(timeoutMilliseconds: -1)) != nil {
                        if poller.isReadable(0), let frames = try? front.receive() {
                            _ = try? back.send(frames)
                            if frames.last?.isEmpty != false { return }
                        }
                        if poller.isReadable(1), let frames = try? back.receive() { _ = try? front.send(frames) }
                    }
                }
                forwarder.start()
                ready.wait()
            }
            dealer = try ZMQSocket(.dealer)
            try dealer.connect("tcp://127.0.0.1:\(throughForwarder ? forwarderPort : echoPort)")
            var header = Rampart_Bus_V1_RequestHeader()
            header.method = BusBench.echo.name
            self.header = header
            self.payload = payload
            _ = try lockStep(100)  // warm-up
        }

        /// `count` round trips, one at a time (on the calling thread: the dealer belongs to whoever calls).
        func lockStep(_ count: Int) throws -> Measurement {
            var header = header
            var latencies: [Double] = []
            latencies.reserveCapacity(count)
            let start = now()
            for index in 0..<count {
                header.requestID = UInt64(index)
                let t0 = now()
                try dealer.send([Data(), FrameCodec.serialize(header), payload])
                _ = try dealer.receive()
                latencies.append(Double(now() - t0) / 1000)
            }
            return Measurement(latencies: latencies, seconds: Double(now() - start) / 1e9)
        }

        /// Ends the echo thread (an empty message) and closes the dealer.
        func stop() {
            _ = try? dealer.send([Data()])
            dealer.close()
        }
    }

    static func waitForService(_ client: BusClient) async throws {
        for _ in 0..<200 {
            let reply = await client.send(
                service: echo.service, method: echo.name, payload: Data(), deadline: unixMillis() + 1000)
            if reply.header.status == .ok { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        fatalError("the bench service never came up")
    }

    static func brokeredLockStep(_ client: BusClient, requests: Int, payload: Data) async throws -> Measurement {
        var latencies: [Double] = []
        latencies.reserveCapacity(requests)
        for _ in 0..<100 { _ = await call(client, payload) }
        let start = now()
        for _ in 0..<requests {
            let t0 = now()
            let status = await call(client, payload)
            precondition(status == .ok, "bench call failed: \(status)")
            latencies.append(Double(now() - t0) / 1000)
        }
        return Measurement(latencies: latencies, seconds: Double(now() - start) / 1e9)
    }

    static func brokeredPipelined(_ client: BusClient, requests: Int, inFlight: Int, payload: Data) async throws
        -> Measurement
    {
        let next = Counter()
        let start = now()
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<inFlight {
                group.addTask {
                    var mine: [Double] = []
                    while next.value.add(1, ordering: .relaxed).oldValue < requests {
                        let t0 = now()
                        let status = await call(client, payload)
                        precondition(status == .ok, "bench call failed: \(status)")
                        mine.append(Double(now() - t0) / 1000)
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        return Measurement(latencies: latencies, seconds: Double(now() - start) / 1e9)
    }

    static func call(_ client: BusClient, _ payload: Data) async -> Rampart_Bus_V1_StatusCode {
        await client.send(
            service: echo.service, method: echo.name, payload: payload, deadline: unixMillis() + 10_000
        ).header.status
    }
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

extension BusBench {
    /// How a benchmark that talks to a running system authenticates: the admin key of `RAMPART_KEYS`
    /// (the scripts make one with `rampart keys init`), or plain when `RAMPART_INSECURE_PLAIN=1`.
    static func systemSecurity() throws -> BusSecurity {
        if let keys = ProcessInfo.processInfo.environment["RAMPART_KEYS"], !keys.isEmpty {
            return .curve(try BusKeyFile.load(KeyFolder(path: keys).keyPath(role: .admin, name: "admin")))
        }
        return .plain
    }
}
