import ArgumentParser
import Foundation

/// Reads `RAMPART_*` settings from the environment; flags override them.
public enum Environment {
    /// The value of `name`, or nil when unset or empty.
    public static func value(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }
}

/// Where the broker is (`--bus`, `RAMPART_BUS`).
public struct BusOptions: ParsableArguments, Sendable {
    /// The default broker endpoint.
    public static let defaultEndpoint = "tcp://127.0.0.1:7400"

    @Option(name: .customLong("bus"), help: "Broker endpoint (env RAMPART_BUS).")
    public var endpoint: String = Environment.value("RAMPART_BUS") ?? BusOptions.defaultEndpoint

    @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval with the broker, ms (env RAMPART_HEARTBEAT_MS).")
    public var heartbeatMs: Int64 = Environment.value("RAMPART_HEARTBEAT_MS").flatMap { Int64($0) } ?? 2500

    public init() {}

    public func validate() throws {
        guard endpoint.hasPrefix("tcp://") || endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") else {
            throw ValidationError("--bus must be a ZeroMQ endpoint such as tcp://127.0.0.1:7400, not '\(endpoint)'")
        }
        guard heartbeatMs >= 10 else { throw ValidationError("--heartbeat-ms must be at least 10") }
    }
}

/// Where PostgreSQL is (`--database`, `RAMPART_DATABASE_URL`), as a libpq connection string.
public struct DatabaseOptions: ParsableArguments, Sendable {
    @Option(
        name: .customLong("database"),
        help: "libpq connection string, e.g. 'host=/path/sock port=54329 user=postgres dbname=rampart' (env RAMPART_DATABASE_URL).")
    public var connectionString: String = Environment.value("RAMPART_DATABASE_URL") ?? ""

    @Option(name: .customLong("database-pool"), help: "Connections to keep open.")
    public var poolSize: Int = 4

    public init() {}

    public func validate() throws {
        guard !connectionString.isEmpty else {
            throw ValidationError("no database: pass --database or set RAMPART_DATABASE_URL")
        }
        guard (1...64).contains(poolSize) else { throw ValidationError("--database-pool must be between 1 and 64") }
    }
}
