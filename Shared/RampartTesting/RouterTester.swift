import Foundation
import Logging
import RampartBus
import RampartProto
import RampartRPC
import SwiftProtobuf
import Synchronization

/// Calls a service's handlers in-process, as its `ServiceHost` would, without a broker, processes or
/// sockets: each request goes through `ServiceRouter.handle` — the method's access policy (P7), the
/// payload's decoding, the handler with its `RequestContext`, the reply status — as a caller the broker
/// would have authenticated (a key's name and role).
///
///     let tester = RouterTester(InventoryService(pool: pool).router())
///     let request = Rampart_Inventory_V1_GetManagerRequest()
///     let manager: Rampart_Inventory_V1_ManagerResponse =
///         try await tester.call(InventoryAPI.getManager, request, as: .viewer)
///     let refusal = await tester.failure(InventoryAPI.getManager, request, as: .device, name: "fw-1")
///     #expect(refusal?.code == .permissionDenied)
///
/// What the router would write to the audit log (audited calls, refusals) is kept in `audited` instead.
public struct RouterTester: Sendable {
    /// The router called, its auditor replaced by the tester's.
    public let router: ServiceRouter
    private let recorder = AuditRecorder()
    private let logger: Logger

    /// A tester of `router`'s handlers; what it would audit is recorded in `audited`.
    public init(_ router: ServiceRouter, logger: Logger = Logger(label: "router-tester")) {
        var router = router
        router.auditor = recorder.auditor
        self.router = router
        self.logger = logger
    }

    /// The audit records of the calls so far, in order (P9).
    public var audited: [AuditEvent] { recorder.events }

    /// Calls `method` with `request` as the key named `name` of `role`, with `deadlineUnixMs` (0: none)
    /// and `metadata`. Returns the handler's response, or throws the `RPCError` the caller would get
    /// (`PERMISSION_DENIED` without running the handler when `role` is outside the method's policy).
    public func call<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, as role: BusRole, name: String = "tester",
        deadlineUnixMs: Int64 = 0, metadata: [String: String] = [:]
    ) async throws(RPCError) -> Response {
        let (reply, body) = try await send(
            method.name, request, as: role, name: name, deadlineUnixMs: deadlineUnixMs, metadata: metadata)
        guard reply.status == .ok else { throw RPCError(reply.status, reply.message) }
        do {
            return try Response(serializedBytes: body)
        } catch {
            throw RPCError(.internal, "the response is not a valid \(Response.protoMessageName)", cause: error)
        }
    }

    /// The error of a call expected to fail, or nil when it succeeded (its response is not decoded).
    public func failure<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, as role: BusRole, name: String = "tester",
        deadlineUnixMs: Int64 = 0, metadata: [String: String] = [:]
    ) async -> RPCError? {
        do {
            let (reply, _) = try await send(
                method.name, request, as: role, name: name, deadlineUnixMs: deadlineUnixMs, metadata: metadata)
            return reply.status == .ok ? nil : RPCError(reply.status, reply.message)
        } catch {
            return error
        }
    }

    private func send(
        _ method: String, _ request: some SwiftProtobuf.Message, as role: BusRole, name: String, deadlineUnixMs: Int64,
        metadata: [String: String]
    ) async throws(RPCError) -> (Rampart_Bus_V1_ReplyHeader, Data) {
        var header = Rampart_Bus_V1_RequestHeader()
        header.requestID = UInt64.random(in: 1...UInt64.max)
        header.method = method
        header.deadlineUnixMs = deadlineUnixMs
        header.metadata = metadata
        // A key's identity as the broker puts it in the header (its public key is irrelevant here).
        header.caller = CallerIdentity(key: String(repeating: "T", count: 40), name: name, role: role).proto
        let payload: Data
        do {
            payload = try request.serializedData()
        } catch {
            throw RPCError.invalidArgument("the request does not serialize: \(error)")
        }
        return await router.handle(
            header: header, payload: payload, instanceId: "router-tester", logger: logger, authenticated: true)
    }
}

/// The audit records a `RouterTester`'s router hands to its auditor.
private final class AuditRecorder: Sendable {
    private let recorded = Mutex<[AuditEvent]>([])
    var events: [AuditEvent] { recorded.withLock { $0 } }
    var auditor: Auditor { { event in self.recorded.withLock { $0.append(event) } } }
}
