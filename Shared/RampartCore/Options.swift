import ArgumentParser
import Foundation
import Logging
import RampartBus

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

    @Option(name: .customLong("key"), help: "This process's bus key file, made by `rampart keys init` (env RAMPART_KEY).")
    public var keyFileFlag: String?

    /// The flag, or else $RAMPART_KEY.
    public var keyFile: String? { keyFileFlag ?? Environment.value("RAMPART_KEY") }

    @Option(
        name: .customLong("keys"),
        help: "A key folder made by `rampart keys init`; this process uses its own key in it (env RAMPART_KEYS).")
    public var keysDirectoryFlag: String?

    /// The flag, or else $RAMPART_KEYS.
    public var keysDirectory: String? { keysDirectoryFlag ?? Environment.value("RAMPART_KEYS") }

    @Flag(
        name: .customLong("insecure-plain"),
        help: "Talk to the bus without CURVE: no authentication, no encryption. Loopback only (env RAMPART_INSECURE_PLAIN=1).")
    public var insecurePlainFlag = false

    /// Plain mode was asked for, by the flag or by RAMPART_INSECURE_PLAIN=1.
    public var insecurePlain: Bool { insecurePlainFlag || Environment.value("RAMPART_INSECURE_PLAIN") == "1" }

    public init() {}

    public func validate() throws {
        guard endpoint.hasPrefix("tcp://") || endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") else {
            throw ValidationError("--bus must be a ZeroMQ endpoint such as tcp://127.0.0.1:7400, not '\(endpoint)'")
        }
        guard heartbeatMs >= 10 else { throw ValidationError("--heartbeat-ms must be at least 10") }
    }

    /// How this process talks to the bus: its key (`--key`, or `DIR/<defaultKey>` of `--keys`), or plain
    /// when asked for (`--insecure-plain`, loopback only, said loudly in the log).
    /// `defaultKey`: the key file's path inside a key folder ("services/inventory.key").
    public func security(defaultKey: String, logger: Logger) throws -> BusSecurity {
        let path = keyFile ?? keysDirectory.map { "\($0)/\(defaultKey)" }
        if let path {
            let file = try BusKeyFile.load(path)
            guard file.brokerKey != nil else { throw BusKeyError("\(path) is the broker's key, not a client's") }
            return .curve(file)
        }
        guard insecurePlain else {
            throw ValidationError(
                "no bus key: pass --key FILE or --keys DIR (made by `rampart keys init DIR`), or, on loopback only, --insecure-plain")
        }
        try Self.allowPlain(endpoints: [endpoint], logger: logger)
        return .plain
    }

    /// Refuses plain mode on an endpoint other machines can reach; logs loudly otherwise.
    public static func allowPlain(endpoints: [String], logger: Logger) throws {
        for endpoint in endpoints where !BusEndpoints.isLoopback(endpoint) {
            throw ValidationError(
                "--insecure-plain is allowed only on loopback endpoints, and \(endpoint) is not one: use CURVE keys (rampart keys init)")
        }
        logger.warning(
            "INSECURE: the bus runs WITHOUT authentication or encryption (--insecure-plain); every local process can call every method as admin",
            metadata: ["endpoints": "\(endpoints.joined(separator: " "))"])
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
