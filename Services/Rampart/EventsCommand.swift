import ArgumentParser
import Foundation
import Logging
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC
import Synchronization

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Follow the event journal.", subcommands: [Tail.self])

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the events in the journal: the last ones, or every one after --since; --follow keeps printing new ones.",
            discussion: """
                Without --follow it prints what the journal holds and exits: the last --count events (10 by
                default), or with --since N every event after N (at most --count). With --follow it goes on
                with events as they happen, until --count events were printed (waiting at most --timeout
                seconds for them: exit 5 when they did not all come) or, without --count, until interrupted.
                """)
        @Option(help: "Every event after this sequence number (0 = from the beginning).")
        var since: UInt64?
        @Option(help: "Only topics starting with this prefix, e.g. inventory.device.") var topic: String = ""
        @Option(help: "At most this many events (without --follow and --since: the last 10 by default).") var count: Int?
        @Flag(help: "Keep printing events as they happen.") var follow = false
        @Option(name: .customLong("events"), help: "The publish endpoint (default: asked of the bus).")
        var publishEndpoint: String?
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if let count, count <= 0 { throw ValidationError("--count must be positive") }
        }

        func run() async throws {
            do {
                if follow { try await followEvents() } else { try await printExisting() }
            } catch let error as RPCError {
                printError("\(error.code.name): \(error.message)")
                throw ExitCode(ClientOptions.exitCode(for: error.code))
            }
        }

        private func emit(_ event: Rampart_Bus_V1_Event) throws {
            if options.output == .json { try printJSON(event) } else { print(Self.line(event)) }
            fflush(nil)
        }

        /// What the journal holds now: after `since` (forward, up to `count`), or the last `count`.
        private func printExisting() async throws {
            let client = try options.makeClient()
            defer { client.close() }
            func replay(after seq: UInt64, limit: UInt32) async throws -> Rampart_Bus_V1_ReplayResponse {
                var request = Rampart_Bus_V1_ReplayRequest()
                request.sinceSeq = seq
                request.topicPrefix = topic
                request.limit = limit
                return try await options.call(client, JournalAPI.replay, request, idempotent: true)
            }
            if let since {
                var position = since
                var printed = 0
                while true {
                    let room = count.map { $0 - printed } ?? 1000
                    guard room > 0 else { break }
                    let limit = UInt32(min(1000, room))
                    let page = try await replay(after: position, limit: limit)
                    for event in page.events { try emit(event) }
                    printed += page.events.count
                    // Fewer than asked: every matching event up to the journal's end has been returned.
                    guard page.events.count == Int(limit), let last = page.events.last else { break }
                    position = last.seq
                }
                return
            }
            // The last `wanted` matching events: look back over a window of the journal that grows until it
            // holds enough of them (or reaches the start).
            let wanted = count ?? 10
            let info: Rampart_Bus_V1_JournalInfoResponse = try await options.call(
                client, JournalAPI.info, Rampart_Bus_V1_JournalInfoRequest(), idempotent: true)
            var window = UInt64(max(wanted, 100))
            while true {
                let from = info.lastSeq > window ? info.lastSeq - window : 0
                var found: [Rampart_Bus_V1_Event] = []
                var position = from
                while true {
                    let page = try await replay(after: position, limit: 1000)
                    found += page.events.filter { $0.seq <= info.lastSeq }
                    guard let last = page.events.last, page.events.count == 1000, last.seq < info.lastSeq else { break }
                    position = last.seq
                }
                if found.count >= wanted || from == 0 {
                    for event in found.suffix(wanted) { try emit(event) }
                    return
                }
                window *= 4
            }
        }

        /// As `printExisting` (after `since`, or from now on), then live events; with `count`, at most
        /// `--timeout` seconds are spent waiting for them.
        private func followEvents() async throws {
            let subscriber = EventSubscriber(
                client: try options.makeClient(), topicPrefix: topic,
                publishEndpoint: publishEndpoint, logger: Logger(label: "rampart.events"))
            let seen = Atomic<Int>(0)
            let limit = count
            let output = options.output
            let follow = { @Sendable in
                try await subscriber.follow(since: since, timeout: options.timeoutDuration) { event in
                    if output == .json { try printJSON(event) } else { print(Self.line(event)) }
                    fflush(nil)
                    let total = seen.add(1, ordering: .relaxed).newValue
                    return limit.map { total < $0 } ?? true
                }
            }
            guard let limit else { return try await follow() }
            let deadline = options.timeoutDuration
            let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await follow()
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: deadline)
                    return false
                }
                let first = try await group.next() ?? false
                group.cancelAll()
                return first
            }
            if !finished {
                throw RPCError(
                    .deadlineExceeded,
                    "\(seen.load(ordering: .relaxed)) of \(limit) events came within \(options.timeout) s (--timeout)")
            }
        }

        static func line(_ event: Rampart_Bus_V1_Event) -> String {
            let attributes = event.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return ([String(event.seq), formatTime(event.timeUnixMs), event.topic, event.subject] + attributes)
                .joined(separator: "  ")
        }
    }
}

struct BusStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus", abstract: "What the broker knows: services, instances, queues.", subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Services, their instances and load.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let (status, manager) = try await options.withClient { client in
                let status: Rampart_Bus_V1_BrokerStatusResponse = try await options.call(
                    client, BrokerAPI.status, Rampart_Bus_V1_BrokerStatusRequest(), idempotent: true)
                // This installation's manager id (R6), when inventory answers.
                let manager: Rampart_Inventory_V1_ManagerResponse? = try? await options.call(
                    client, InventoryAPI.getManager, Rampart_Inventory_V1_GetManagerRequest(),
                    idempotent: true)
                return (status, manager)
            }
            if options.output == .json { return try printJSON(status) }
            print("manager: \(manager?.managerID ?? "- (inventory did not answer)")")
            var table = Table("SERVICE", "INSTANCES", "IN FLIGHT", "QUEUED")
            for service in status.services {
                table.add(service.name, service.instances.joined(separator: ","), "\(service.inFlight)", "\(service.queued)")
            }
            print(table.render())
            print("requests routed: \(status.requestsRouted), malformed messages dropped: \(status.malformedFrames)")
        }
    }
}
