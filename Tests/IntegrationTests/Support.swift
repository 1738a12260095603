import Foundation
import RampartAPI
import RampartBus
import RampartProto
import RampartTesting
import Testing

/// Starts a system (bus + `inventories` inventory instances), runs `body`, and always stops it.
/// `plain`: without CURVE (callers then name themselves; see docs/security.md).
/// `followLiveness: false` starts inventory with `--presence-poll-ms 0`: for tests that stand in for
/// devices with hand-made presence reports and no agent on the bus, whose presence the bus's liveness
/// would otherwise set to disconnected a moment later.
func withSystem(
    inventories: Int = 1, plain: Bool = false, followLiveness: Bool = true, _ body: (RunningSystem) async throws -> Void
) async throws {
    let system = try RunningSystem(plain: plain)
    do {
        for _ in 0..<inventories { try system.start("inventory", followLiveness ? [] : ["--presence-poll-ms", "0"]) }
        try await system.waitUntilServing(BusProtocol.journalService)
        if inventories > 0 { try await system.waitUntilServing(InventoryAPI.serviceName, instances: inventories) }
        try await body(system)
    } catch {
        Issue.record("logs:\n\(system.logs)")
        await system.stop()
        throw error
    }
    await system.stop()
}

/// Registration arguments of a device for the CLI.
func deviceArguments(
    _ name: String, serial: String, model: String = "FPR-3120", platform: String = "physical", software: String = "7.4.1",
    patch: Int = 0, ip: String
) -> [String] {
    [
        "devices", "register", name, "--serial", serial, "--model", model, "--platform", platform, "--software", software,
        "--patch", "\(patch)", "--network-modules", "1", "--interface", "1GbE-RJ45=8", "--management-ip", ip,
    ]
}

/// Registers the small fleet of the README: one standalone device, an HA pair and a 3-node cluster.
func registerSmallFleet(_ system: RunningSystem) async throws {
    var commands: [[String]] = [
        deviceArguments("fw-edge", serial: "SA1", ip: "10.0.0.10"),
        deviceArguments("fw-ha-1", serial: "HA1", model: "FPR-4215", ip: "10.0.1.1"),
        deviceArguments("fw-ha-2", serial: "HA2", model: "FPR-4215", ip: "10.0.1.2"),
        ["ha-pairs", "register", "ha-east", "--primary", "fw-ha-1", "--secondary", "fw-ha-2"],
    ]
    for node in 1...3 {
        commands.append(
            deviceArguments(
                "node-\(node)", serial: "CL\(node)", model: "FPR-9300", platform: "native-instance", software: "7.6.0",
                ip: "10.0.2.\(node)"))
    }
    commands.append(["clusters", "register", "cl-west", "--control", "node-1", "--data", "node-2", "--data", "node-3"])
    for command in commands {
        let result = try await system.rampart(command)
        #expect(result.exitCode == 0, "rampart \(command.joined(separator: " ")): \(result)")
    }
}

/// Collects events from `since` until `count` arrived (or the subscriber's call times out).
func collectEvents(_ system: RunningSystem, since: UInt64, count: Int, prefix: String = "") async throws
    -> [Rampart_Bus_V1_Event]
{
    let client = system.client()
    defer { client.close() }
    let subscriber = EventSubscriber(client: client, topicPrefix: prefix, logger: .init(label: "test"))
    let box = EventBox()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await subscriber.follow(since: since) { event in
                box.append(event)
                return box.count < count
            }
        }
        group.addTask {
            try await Task.sleep(for: .seconds(20))
            throw RunningSystem.TimeoutError(description: "only \(box.count) of \(count) events arrived")
        }
        try await group.next()
        group.cancelAll()
    }
    return box.events
}

final class EventBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Rampart_Bus_V1_Event] = []
    func append(_ event: Rampart_Bus_V1_Event) { lock.withLock { stored.append(event) } }
    var events: [Rampart_Bus_V1_Event] { lock.withLock { stored } }
    var count: Int { lock.withLock { stored.count } }
}
