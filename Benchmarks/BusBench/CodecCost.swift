import Foundation
import RampartBus
import RampartProto

/// `bus-bench --codec N`: the CPU time of the frame coding one brokered round trip does, step by step,
/// on one thread (no sockets): what the client, the broker and the service instance spend on headers.
enum CodecCost {
    static func run(count: Int) {
        var request = Rampart_Inventory_V1_GetDeviceRequest()
        request.device = "fw-edge-1"
        let payload = FrameCodec.serialize(request)
        let client = Data([0, 0x6b, 0x8b, 0x45, 0x67])
        let worker = Data([0, 0x12, 0x34, 0x56, 0x78])
        var header = Rampart_Bus_V1_RequestHeader()
        header.requestID = 42
        header.method = BusBench.echo.name
        header.deadlineUnixMs = unixMillis() + 10_000
        header.metadata = ["caller": "bench", "trace-id": UUID().uuidString.lowercased()]

        // One instance of each step's input, made by the step before.
        let clientFrames = FrameCodec.clientRequest(service: "bench", header: header, payload: payload)
        guard case .success(.clientRequest(_, _, let atBroker, _)) = FrameCodec.decodeAtBroker([client] + clientFrames)
        else { fatalError("codec bench: request not decoded") }
        let toWorker = FrameCodec.requestToWorker(worker, client: client, header: atBroker, payload: payload)
        guard case .request(_, let atWorker, _) = FrameCodec.decodeAtWorker(Array(toWorker.dropFirst())) else {
            fatalError("codec bench: request not decoded at the worker")
        }
        var reply = FrameCodec.replyHeader(requestId: atWorker.requestID, status: .ok, message: "", answeredBy: "bench-1")
        reply.route = client
        let fromWorker = FrameCodec.workerReply(reply, payload: payload)
        guard case .success(.workerReply(_, _, let replyAtBroker, _)) = FrameCodec.decodeAtBroker([worker] + fromWorker)
        else { fatalError("codec bench: reply not decoded") }
        let toClient = FrameCodec.replyToClient(client: client, header: replyAtBroker, payload: payload)

        let traceIds = TraceIds()
        let steps: [(String, () -> Void)] = [
            ("client: trace id, UUID() (before)", { _ = UUID().uuidString.lowercased() }),
            ("client: trace id, TraceIds", { _ = traceIds.make(42) }),
            ("client: encode request", { _ = FrameCodec.clientRequest(service: "bench", header: header, payload: payload) }),
            ("broker: decode request", { _ = FrameCodec.decodeAtBroker([client] + clientFrames) }),
            ("broker: encode request to instance", {
                _ = FrameCodec.requestToWorker(worker, client: client, header: atBroker, payload: payload)
            }),
            ("instance: decode request", { _ = FrameCodec.decodeAtWorker(Array(toWorker.dropFirst())) }),
            ("instance: encode reply", { _ = FrameCodec.workerReply(reply, payload: payload) }),
            ("broker: decode reply", { _ = FrameCodec.decodeAtBroker([worker] + fromWorker) }),
            ("broker: encode reply to client", {
                _ = FrameCodec.replyToClient(client: client, header: replyAtBroker, payload: payload)
            }),
            ("client: decode reply", { _ = FrameCodec.decodeClientReply(Array(toClient.dropFirst())) }),
        ]
        var total = 0.0
        for (name, step) in steps {
            for _ in 0..<min(count, 1000) { step() }  // warm-up
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<count { step() }
            let micros = Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(count)
            if !name.hasSuffix("(before)") { total += micros }
            print(name.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: "%6.2f µs", micros))
        }
        print("one round trip".padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: "%6.2f µs", total))
    }
}
