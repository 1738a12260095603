import Foundation
import RampartBus
import Synchronization

/// The power switch of one simulated device of a fleet (`device-agent power`, docs/device-agent.md): lets
/// a test or an operator trying Rampart kill or freeze one device while the rest of the fleet goes on.
public final class DevicePower: Sendable {
    /// A device's power state.
    public enum State: String, Sendable, CaseIterable {
        /// Serving.
        case on
        /// Dead without a word, as a pulled plug or `kill -9`: gone from the bus, no presence report,
        /// exports lost. Back `on`, it boots again.
        case off
        /// Hung, as `kill -STOP`: connected but silent. Back `on`, it goes on where it stopped (its old
        /// exports, the broker's queued messages) — an old box that comes back.
        case frozen
    }

    private struct Inner {
        var state = State.on
        var host: ServiceHost?
    }

    private let inner = Mutex(Inner())

    public init() {}

    /// The state now.
    public var state: State { inner.withLock { $0.state } }

    /// Switches to `state`, applying it to the device's instance on the bus.
    public func set(_ state: State) {
        let host = inner.withLock { inner in
            inner.state = state
            return inner.host
        }
        host?.simulate(Self.simulation(state))
    }

    /// The device's instance now serving (each boot makes a new one); it gets the current state at once.
    func attach(_ host: ServiceHost) {
        let state = inner.withLock { inner in
            inner.host = host
            return inner.state
        }
        host.simulate(Self.simulation(state))
    }

    /// Waits until the device is switched on again (checking every 100 ms); throws when cancelled.
    func waitUntilOn() async throws {
        while state != .on { try await Task.sleep(for: .milliseconds(100)) }
    }

    private static func simulation(_ state: State) -> ServiceHost.Simulation {
        switch state {
        case .on: .running
        case .off: .unplugged
        case .frozen: .frozen
        }
    }

    /// The folder of power switches of the fleet in `directory`: a file `<device name>` holding "off" or
    /// "frozen"; no file is on.
    public static func switchFolder(fleet directory: String) -> String { directory + "/power" }

    /// The states the switch folder of `directory` asks for, by device name (a device not listed is on).
    /// Unreadable or unknown contents are skipped (reported through `invalid`).
    static func read(fleet directory: String, invalid: (String, String) -> Void = { _, _ in }) -> [String: State] {
        let folder = switchFolder(fleet: directory)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [:] }
        var result: [String: State] = [:]
        for name in names where !name.hasPrefix(".") {
            guard let data = FileManager.default.contents(atPath: folder + "/" + name) else { continue }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if let state = State(rawValue: text) { result[name] = state } else { invalid(name, text) }
        }
        return result
    }

    /// Writes the switch of device `name` in the fleet in `directory` (removes it for `on`); the running
    /// fleet applies it within a quarter of a second.
    public static func write(_ state: State, device name: String, fleet directory: String) throws {
        let folder = switchFolder(fleet: directory)
        let path = folder + "/" + name
        if state == .on {
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            return
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let temporary = folder + "/.\(name).\(UUID().uuidString.prefix(8))"
        try Data((state.rawValue + "\n").utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw AgentError("cannot write \(path): \(reason)")
        }
    }
}
