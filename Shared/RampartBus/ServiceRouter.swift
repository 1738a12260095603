import Foundation
import Logging
import RampartProto
import SwiftProtobuf

/// What a handler knows about the call it serves.
public struct RequestContext: Sendable {
    /// The caller's request id.
    public var requestId: UInt64
    /// "package.Service/Method".
    public var method: String
    /// Absolute deadline, milliseconds since the epoch (0 = none).
    public var deadlineUnixMs: Int64
    /// Caller metadata ("caller", "trace-id").
    public var metadata: [String: String]
    /// A logger carrying the method, request id and trace id.
    public var logger: Logger

    /// Who called, as the caller named itself ("rampart-cli@host"); authenticated identities come with CURVE.
    public var caller: String { metadata["caller"] ?? "unknown" }
}

/// The methods a service serves: protobuf request in, protobuf response out, errors as `RPCError`.
public struct ServiceRouter: Sendable {
    /// A decoded-payload handler.
    public typealias Handler = @Sendable (Data, RequestContext) async throws -> Data

    private(set) var handlers: [String: Handler] = [:]

    /// An empty router.
    public init() {}

    /// Serves `method` ("rampart.inventory.v1.Inventory/ListDevices") with `body`.
    public mutating func register<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: String,
        _ body: @escaping @Sendable (Request, RequestContext) async throws -> Response
    ) {
        precondition(handlers[method] == nil, "\(method) registered twice")
        handlers[method] = { payload, context in
            let request: Request
            do {
                request = try Request(serializedBytes: payload)
            } catch {
                throw RPCError.invalidArgument("payload is not a valid \(Request.protoMessageName)")
            }
            return FrameCodec.serialize(try await body(request, context))
        }
    }

    /// The registered method names.
    public var methods: [String] { handlers.keys.sorted() }

    /// Runs the handler of `header.method`, turning every outcome into a reply header and payload.
    public func handle(
        header: Rampart_Bus_V1_RequestHeader, payload: Data, instanceId: String, logger: Logger
    ) async -> (Rampart_Bus_V1_ReplyHeader, Data) {
        var logger = logger
        logger[metadataKey: "method"] = "\(header.method)"
        logger[metadataKey: "request-id"] = "\(header.requestID)"
        if let trace = header.metadata["trace-id"] { logger[metadataKey: "trace-id"] = "\(trace)" }
        func reply(_ status: Rampart_Bus_V1_StatusCode, _ message: String) -> Rampart_Bus_V1_ReplyHeader {
            FrameCodec.replyHeader(requestId: header.requestID, status: status, message: message, answeredBy: instanceId)
        }
        guard let handler = handlers[header.method] else {
            return (reply(.unimplemented, "this service has no method '\(header.method)'"), Data())
        }
        if header.deadlineUnixMs > 0, header.deadlineUnixMs <= unixMillis() {
            return (reply(.deadlineExceeded, "the deadline passed before the request could start"), Data())
        }
        let context = RequestContext(
            requestId: header.requestID, method: header.method, deadlineUnixMs: header.deadlineUnixMs,
            metadata: header.metadata, logger: logger)
        do {
            let response = try await handler(payload, context)
            return (reply(.ok, ""), response)
        } catch let error as any RPCErrorConvertible {
            let rpc = error.rpcError
            if rpc.code == .internal || rpc.code == .unavailable {
                logger.error("request failed", metadata: ["error": "\(rpc.debugDescription)"])
            } else {
                logger.debug("request refused", metadata: ["error": "\(rpc.description)"])
            }
            return (reply(rpc.code, rpc.message), Data())
        } catch {
            logger.error("request failed with an unexpected error", metadata: ["error": "\(error)"])
            return (reply(.internal, "internal error while serving \(header.method); see the service's log"), Data())
        }
    }
}
