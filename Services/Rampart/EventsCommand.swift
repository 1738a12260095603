import ArgumentParser
import Foundation
import Logging
import RampartBus
import RampartProto
import Synchronization

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Follow the event journal.", subcommands: [Tail.self])

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print events as they happen; with --since, first every event after that sequence number.")
        @Option(help: "Start after this sequence number (0 = from the beginning); default: from now on.")
        var since: UInt64?
        @Option(help: "Only topics starting with this prefix, e.g. inventory.device.") var topic: String = ""
        @Option(help: "Stop after this many events.") var count: Int?
        @Option(name: .customLong("events"), help: "The publish endpoint (default: asked of the bus).")
        var publishEndpoint: String?
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if let count, count <= 0 { throw ValidationError("--count must be positive") }
        }

        func run() async throws {
            let subscriber = EventSubscriber(
                client: try options.makeClient(), topicPrefix: topic,
                publishEndpoint: publishEndpoint, logger: Logger(label: "rampart.events"))
            let seen = Atomic<Int>(0)
            let (output, limit) = (options.output, count)
            do {
                try await subscriber.follow(since: since, timeout: options.timeoutDuration) { event in
                    if output == .json { try printJSON(event) } else { print(Self.line(event)) }
                    fflush(nil)
                    let total = seen.add(1, ordering: .relaxed).newValue
                    return limit.map { total < $0 } ?? true
                }
            } catch let error as RPCError {
                printError("\(error.code.name): \(error.message)")
                throw ExitCode(ClientOptions.exitCode(for: error.code))
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
            let status: Rampart_Bus_V1_BrokerStatusResponse = try await options.withClient {
                try await options.call(
                    $0, BusProtocol.brokerService, Broker.statusMethod, Rampart_Bus_V1_BrokerStatusRequest(), idempotent: true)
            }
            if options.output == .json { return try printJSON(status) }
            var table = Table("SERVICE", "INSTANCES", "IN FLIGHT", "QUEUED")
            for service in status.services {
                table.add(service.name, service.instances.joined(separator: ","), "\(service.inFlight)", "\(service.queued)")
            }
            print(table.render())
            print("requests routed: \(status.requestsRouted), malformed messages dropped: \(status.malformedFrames)")
        }
    }
}
