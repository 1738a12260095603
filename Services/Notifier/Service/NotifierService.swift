import Foundation
import Logging
import Postgres
import RampartAPI
import RampartBasics
import RampartBus
import RampartDatabase
import RampartProto
import RampartRPC

/// The `notifier` service's handlers (P15): hooks added, listed, removed and tested through the bus.
/// Delivery itself is `Dispatcher`'s.
public struct NotifierService: Sendable {
    let pool: PostgresPool
    let client: BusClient
    let sender: any WebhookSending
    let configuration: DeliveryConfiguration
    let logger: Logger

    public init(
        pool: PostgresPool, client: BusClient, sender: any WebhookSending, configuration: DeliveryConfiguration,
        logger: Logger
    ) {
        self.pool = pool
        self.client = client
        self.sender = sender
        self.configuration = configuration
        self.logger = logger
    }

    /// Migrates the schema the notifier writes to (`notify`).
    public static func migrate(connection: PostgresConnection, logger: Logger) throws {
        try Migrator.migrate(schema: "notify", migrations: NotifyMigrations.all, connection: connection, logger: logger)
    }

    /// Seals hooks stored in the clear by an older notifier (run at start, after `migrate`).
    public static func sealPlainHooks(_ sealing: HookSealing, connection: PostgresConnection, logger: Logger) throws {
        try HookStore.sealPlainHooks(sealing, on: connection, logger: logger)
    }

    /// The handlers, ready for a `ServiceHost`.
    public func router() -> ServiceRouter {
        var router = ServiceRouter(for: NotifyAPI.self)
        router.register(NotifyAPI.addHook) { (request: Rampart_Notify_V1_AddHookRequest, context) in
            try await add(request, context)
        }
        router.register(NotifyAPI.listHooks) { (_: Rampart_Notify_V1_ListHooksRequest, _) in
            var response = Rampart_Notify_V1_ListHooksResponse()
            response.hooks = try await pool.serve { try HookStore.list(on: $0) }
            return response
        }
        router.register(NotifyAPI.removeHook) { (request: Rampart_Notify_V1_RemoveHookRequest, context) in
            let id = try Self.hookID(request.id)
            context.audit.subject = request.id
            guard try await pool.serve({ try HookStore.delete(id, on: $0) }) else {
                throw RPCError.notFound("no hook \(request.id)")
            }
            context.logger.notice("removed a hook", metadata: ["hook": "\(request.id)", "caller": "\(context.caller)"])
            var response = Rampart_Notify_V1_RemoveHookResponse()
            response.id = id.uuidString.lowercased()
            return response
        }
        router.register(NotifyAPI.testHook, offSocketThread: true) { (request: Rampart_Notify_V1_TestHookRequest, context) in
            try await test(request, context)
        }
        return router
    }

    func add(_ request: Rampart_Notify_V1_AddHookRequest, _ context: RequestContext) async throws
        -> Rampart_Notify_V1_AddHookResponse
    {
        if let problem = URLMasking.problem(request.url) { throw RPCError.invalidArgument(problem) }
        guard !request.topics.isEmpty else { throw RPCError.invalidArgument("name at least one topic (--topic backup.job.failed)") }
        guard request.topics.count <= 100 else { throw RPCError.invalidArgument("a hook has at most 100 topics") }
        for topic in request.topics {
            if let problem = TopicFilter.problem(topic) { throw RPCError.invalidArgument(problem) }
        }
        guard request.secret.utf8.count <= 1024 else { throw RPCError.invalidArgument("a secret is at most 1024 bytes") }
        // Delivery starts after the journal's end now, unless the operator asked for everything.
        var start: UInt64 = 0
        if !request.fromStart {
            let info: Rampart_Bus_V1_JournalInfoResponse = try await client.call(
                JournalAPI.info, Rampart_Bus_V1_JournalInfoRequest(), timeout: configuration.callTimeout, idempotent: true)
            start = info.lastSeq
        }
        let id = UUID()
        let lastSeq = start
        let (url, topics, secret, caller) = (request.url, Array(Set(request.topics)).sorted(), request.secret, context.caller)
        let sealing = configuration.sealing
        let hook = try await pool.serve {
            try HookStore.insert(
                id: id, url: url, topics: topics, secret: secret, createdBy: caller, lastSeq: lastSeq, now: Date(),
                sealing: sealing, on: $0)
        }
        context.audit.subject = hook.id
        context.audit.note("url", hook.url)
        context.audit.note("topics", topics.joined(separator: ","))
        context.audit.note("signed", "\(hook.signed)")
        context.logger.notice(
            "added a hook",
            metadata: ["hook": "\(hook.id)", "url": "\(hook.url)", "topics": "\(topics)", "caller": "\(caller)"])
        var response = Rampart_Notify_V1_AddHookResponse()
        response.hook = hook
        return response
    }

    func test(_ request: Rampart_Notify_V1_TestHookRequest, _ context: RequestContext) async throws
        -> Rampart_Notify_V1_TestHookResponse
    {
        let id = try Self.hookID(request.id)
        context.audit.subject = request.id
        let sealing = configuration.sealing
        guard let hook = try await pool.serve({ try HookStore.record(id, sealing: sealing, on: $0) }) else {
            throw RPCError.notFound("no hook \(request.id)")
        }
        var event = Rampart_Bus_V1_Event()
        event.seq = 0
        event.topic = Self.testTopic
        event.timeUnixMs = Date().unixMillis
        event.source = NotifyAPI.serviceName
        event.subject = hook.id.uuidString.lowercased()
        event.attributes = ["requested_by": context.caller, "note": "a test event from `rampart notify test`"]
        let body = WebhookBody.json(event)
        let outcome = await sender.post(
            url: hook.url, body: body, headers: Dispatcher.headers(body: body, topic: event.topic, seq: 0, hook: hook),
            timeout: configuration.requestTimeout)
        context.audit.note("http_status", "\(outcome.status)")
        var response = Rampart_Notify_V1_TestHookResponse()
        response.httpStatus = UInt32(outcome.status)
        response.error = outcome.error
        response.body = String(decoding: body, as: UTF8.self)
        return response
    }

    /// The topic of `rampart notify test`'s event; never a journal topic.
    public static let testTopic = "notify.test"

    static func hookID(_ text: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw RPCError.invalidArgument("'\(text)' is not a hook id") }
        return id
    }
}
