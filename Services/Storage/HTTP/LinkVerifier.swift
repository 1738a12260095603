import Logging
import RampartAPI
import RampartBus
import RampartLinks
import RampartProto

/// Decides whether a download request carries a valid signed link (L2). The server passes the request
/// exactly as received: the method, the raw percent-encoded path and the raw query string.
///
/// Answers the link's backup, object, file name and key on success; throws `RPCError` otherwise:
/// `PERMISSION_DENIED` with a short reason when the link is refused (expired, tampered, unknown key,
/// malformed), `NOT_FOUND` when its backup is gone, anything else when the answer could not be had.
public protocol LinkVerifier: Sendable {
    /// Checks one request.
    func verify(_ request: Rampart_Links_V1_VerifyLinkRequest) async throws -> Rampart_Links_V1_VerifyLinkResponse
}

/// The production verifier: asks the `link-signer` service (`VerifyLink`) over the bus, with a short
/// deadline so a slow or absent signer turns into a quick 503 rather than a hanging download (an
/// UNAVAILABLE answer, e.g. while link-signer restarts, is retried with backoff within that deadline).
public struct BusLinkVerifier: LinkVerifier {
    /// The bus client the calls go through.
    public let client: BusClient
    /// How long one VerifyLink call may take.
    public let timeout: Duration

    /// A verifier calling through `client`, each call bounded by `timeout` (default 2 s).
    public init(client: BusClient, timeout: Duration = .seconds(2)) {
        self.client = client
        self.timeout = timeout
    }

    /// Calls `VerifyLink`; throws its `RPCError` (`DEADLINE_EXCEEDED` when no answer came in time).
    public func verify(_ request: Rampart_Links_V1_VerifyLinkRequest) async throws
        -> Rampart_Links_V1_VerifyLinkResponse
    {
        try await client.call(
            LinksAPI.verifyLink, request, timeout: timeout, idempotent: true)
    }
}

/// A verifier made of a closure (tests, tools).
public struct CallbackLinkVerifier: LinkVerifier {
    private let body: @Sendable (Rampart_Links_V1_VerifyLinkRequest) async throws -> Rampart_Links_V1_VerifyLinkResponse

    /// A verifier answering with `body`.
    public init(
        _ body:
            @escaping @Sendable (Rampart_Links_V1_VerifyLinkRequest) async throws
            -> Rampart_Links_V1_VerifyLinkResponse
    ) {
        self.body = body
    }

    /// Answers with the closure.
    public func verify(_ request: Rampart_Links_V1_VerifyLinkRequest) async throws
        -> Rampart_Links_V1_VerifyLinkResponse
    {
        try await body(request)
    }
}
