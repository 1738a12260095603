import AsyncHTTPClient
import Foundation
import Logging

/// What became of one POST.
public struct DeliveryOutcome: Sendable, Equatable {
    /// The HTTP status the hook answered; 0 when it never answered.
    public var status: Int
    /// "" when the hook answered 2xx; else why not, for people (never with the URL's secrets).
    public var error: String

    public var delivered: Bool { error.isEmpty }
}

/// Sends one webhook request: POST of a JSON body, signed when the hook has a secret.
public protocol WebhookSending: Sendable {
    func post(url: String, body: Data, headers: [(String, String)], timeout: Duration) async -> DeliveryOutcome
}

/// The process's HTTP client, never shut down (a global is never deinitialised), as AsyncHTTPClient's
/// own `shared` one but for webhooks: a hook that cannot be reached fails within 3 s rather than at the
/// request's deadline, and a redirect is a failure (a signed body goes where the operator said, only).
private let webhookHTTPClient = HTTPClient(
    eventLoopGroup: HTTPClient.defaultEventLoopGroup,
    configuration: HTTPClient.Configuration(
        redirectConfiguration: .disallow, timeout: HTTPClient.Configuration.Timeout(connect: .seconds(3), read: .seconds(30))),
    backgroundActivityLogger: Logger(label: "rampart.notifier.http"))

/// `WebhookSending` over AsyncHTTPClient (http and https, the system's trust roots).
public struct HTTPWebhookSender: WebhookSending {
    let client: HTTPClient

    /// A sender on the process's webhook client.
    public init() {
        self.client = webhookHTTPClient
    }

    public func post(url: String, body: Data, headers: [(String, String)], timeout: Duration) async -> DeliveryOutcome {
        // User info in the URL is HTTP basic authentication, sent as a header (AsyncHTTPClient sends none).
        var target = url
        var authorization: String?
        if var components = URLComponents(string: url), components.user != nil || components.password != nil {
            let credentials = "\(components.user ?? ""):\(components.password ?? "")"
            authorization = "Basic " + Data(credentials.utf8).base64EncodedString()
            components.user = nil
            components.password = nil
            target = components.string ?? url
        }
        var request = HTTPClientRequest(url: target)
        request.method = .POST
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "rampart-notifier/1")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(Array(body))
        do {
            let response = try await client.execute(request, timeout: .milliseconds(timeout.milliseconds))
            // Read (at most 64 KiB of) the answer so that the connection can be used again.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let status = Int(response.status.code)
            return DeliveryOutcome(status: status, error: (200..<300).contains(status) ? "" : "HTTP \(status)")
        } catch {
            return DeliveryOutcome(status: 0, error: Self.describe(error))
        }
    }

    /// An error as people read it, without the request (whose URL may hold a secret).
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        let text = "\(error)"
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
