// libFuzzer target: the bus frame codec (Shared/RampartBus/Frames.swift) on arbitrary multipart
// messages, as the broker (ROUTER) and a service instance (DEALER) decode them. Build and run with
// dev/fuzz.sh frame-codec [SECONDS]. The input is split into frames at each "\n|\n" marker (so the
// fuzzer can grow and shrink frame counts); each decoded message is re-encoded and decoded again.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func frameCodecFuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    guard let bytes else { return 0 }
    let input = Data(bytes: bytes, count: count)
    let frames = split(input)

    switch FrameCodec.decodeAtBroker(frames) {
    case .success(.clientRequest(let client, let service, let header, let payload)):
        let again = FrameCodec.decodeAtBroker([client] + FrameCodec.clientRequest(service: service, header: header, payload: payload))
        guard case .success(.clientRequest(client, service, _, payload)) = again else {
            fatalError("a decoded client request does not survive re-encoding: \(frames.map(\.count))")
        }
        let reply = FrameCodec.replyHeader(requestId: header.requestID, status: .invalidArgument, message: "x", answeredBy: "fuzz")
        let sent = FrameCodec.replyToClient(client: client, header: reply, payload: Data())
        guard let (decoded, _) = FrameCodec.decodeClientReply(Array(sent.dropFirst())),
            decoded.requestID == header.requestID
        else { fatalError("a reply to a decoded request does not decode") }
    case .success, .failure:
        break
    }
    // The same frames as a service instance would see them (no routing id).
    if case .request(let client, let header, let payload) = FrameCodec.decodeAtWorker(frames) {
        let forwarded = FrameCodec.requestToWorker(Data([1]), client: client, header: header, payload: payload)
        guard case .request(client, _, payload) = FrameCodec.decodeAtWorker(Array(forwarded.dropFirst())) else {
            fatalError("a decoded REQUEST does not survive re-encoding")
        }
    }
    _ = FrameCodec.decodeClientReply(frames)
    return 0
}

/// Frames of `input`: split at "\n|\n".
private func split(_ input: Data) -> [Data] {
    let marker = Data("\n|\n".utf8)
    var frames: [Data] = []
    var rest = input[...]
    while let range = rest.range(of: marker) {
        frames.append(Data(rest[rest.startIndex..<range.lowerBound]))
        rest = rest[range.upperBound...]
    }
    frames.append(Data(rest))
    return frames
}
