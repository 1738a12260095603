import Foundation
import RampartAPI
import RampartBus
import RampartProto

/// A running Rampart for an integration test: its own database on the test server, a `bus` and
/// any number of service instances as real processes on free loopback ports. Stop it with `stop()`.
public final class RunningSystem: @unchecked Sendable {
    /// The broker endpoint.
    public let busEndpoint: String
    /// The event publish endpoint.
    public let eventsEndpoint: String
    /// The database's connection string.
    public let database: String
    /// Heartbeat interval given to every process: short, so liveness tests are quick, yet long enough
    /// (an instance is dropped after 3 missed beats) that a loaded 2-core machine does not drop live ones.
    public let heartbeatMs: Int
    /// Folder of the processes' logs.
    public let logDirectory: String
    /// The key folder every process of this system uses (`RAMPART_KEYS`); nil when the system runs in
    /// plain mode. It has keys for every service, operators "admin" (admin), "operator" (operator) and
    /// "viewer" (viewer); device keys are added with `addDeviceKeys`.
    public let keys: KeyFolder?
    /// The bus process.
    public private(set) var bus: ChildProcess!
    private var services: [ChildProcess] = []
    private var restarts = 0
    private let lock = NSLock()

    /// Starts the bus on a fresh database on the test server; wait for it with `waitUntilServing`.
    public convenience init(heartbeatMs: Int = 500, plain: Bool = false) throws {
        try self.init(database: try TestDatabase.create(), heartbeatMs: heartbeatMs, plain: plain)
    }

    /// Starts the bus on `database` (a connection string: e.g. a private server a test may stop).
    /// With CURVE (the default) a fresh key folder is made first; `plain` runs `--insecure-plain`.
    public init(database: String, heartbeatMs: Int = 500, plain: Bool = false) throws {
        self.database = database
        busEndpoint = "tcp://127.0.0.1:\(FreePort.next())"
        eventsEndpoint = "tcp://127.0.0.1:\(FreePort.next())"
        httpPort = FreePort.next()
        self.heartbeatMs = heartbeatMs
        logDirectory = NSTemporaryDirectory() + "rampart-it-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        keys = plain
            ? nil
            : try KeyFolder.initialize(
                at: logDirectory + "/keys", operators: [("admin", .admin), ("operator", .operator), ("viewer", .viewer)])
        bus = try ChildProcess(
            Binaries.path("bus"), ["--listen", busEndpoint, "--publish", eventsEndpoint], environment: environment,
            logPath: logDirectory + "/bus.log")
    }

    /// The port storage's HTTP download endpoint listens on (RAMPART_STORAGE_HTTP_PORT).
    public let httpPort: Int

    /// Where link-signer's URLs point: storage's HTTP endpoint (RAMPART_LINK_BASE_URL).
    public var httpBaseURL: String { "http://127.0.0.1:\(httpPort)" }

    /// The log level of every process: `RAMPART_TEST_LOG_LEVEL` of the test run (e.g. `debug` to chase a
    /// failure), else `info`.
    public static let logLevel = ProcessInfo.processInfo.environment["RAMPART_TEST_LOG_LEVEL"] ?? "info"

    /// The environment every Rampart process of this system gets.
    public var environment: [String: String] {
        var environment = [
            "RAMPART_DATABASE_URL": database, "RAMPART_BUS": busEndpoint, "RAMPART_HEARTBEAT_MS": "\(heartbeatMs)",
            "RAMPART_LOG_LEVEL": Self.logLevel, "RAMPART_STORAGE_HTTP_PORT": "\(httpPort)", "RAMPART_LINK_BASE_URL": httpBaseURL,
        ]
        if let keys { environment["RAMPART_KEYS"] = keys.path } else { environment["RAMPART_INSECURE_PLAIN"] = "1" }
        return environment
    }

    /// The environment of a process calling as operator `name` ("admin", "operator", "viewer", or one
    /// added with `keys.add`).
    public func environment(as name: String) -> [String: String] {
        var environment = environment
        if let keys, let entry = try? keys.list().first(where: { $0.name == name }) {
            environment["RAMPART_KEY"] = keys.keyPath(role: entry.role, name: name)
        }
        return environment
    }

    /// Makes and admits a key for each device named (device agents of this system find theirs by name).
    public func addDeviceKeys(_ names: [String]) throws {
        guard let keys else { return }
        let existing = Set(try keys.list().filter { $0.role == .device }.map(\.name))
        let missing = Array(Set(names).subtracting(existing)).sorted()
        if !missing.isEmpty { try keys.add(missing.map { (.device, $0) }) }
    }

    /// The environment of a device agent acting as device `name` (its key made when missing): a
    /// replacement device is given the key of the device it replaces.
    public func environment(asDevice name: String) throws -> [String: String] {
        try addDeviceKeys([name])
        var environment = environment
        if let keys { environment["RAMPART_KEY"] = keys.keyPath(role: .device, name: name) }
        return environment
    }

    /// How an in-process client of this system calls as `name`.
    public func security(as name: String = "admin") -> BusSecurity {
        guard let keys, let entry = try? keys.list().first(where: { $0.name == name }),
            let file = try? BusKeyFile.load(keys.keyPath(role: entry.role, name: name))
        else { return .plain }
        return .curve(file)
    }

    /// Starts one more instance of executable `name` (e.g. "inventory"); with `openFiles`, as a process
    /// that may open at most that many files (soft and hard limit, set by util-linux's `prlimit`).
    @discardableResult
    public func start(_ name: String, _ arguments: [String] = [], openFiles: Int? = nil) throws -> ChildProcess {
        lock.lock()
        defer { lock.unlock() }
        let (executable, allArguments) =
            openFiles.map { ("/usr/bin/prlimit", ["--nofile=\($0):\($0)", "--", Binaries.path(name)] + arguments) }
            ?? (Binaries.path(name), arguments)
        let process = try ChildProcess(
            executable, allArguments, environment: environment,
            logPath: logDirectory + "/\(name)-\(services.count).log")
        services.append(process)
        return process
    }

    /// A client of this system's bus.
    public func client(caller: String = "integration-test", as name: String = "admin") -> BusClient {
        BusClient(endpoint: busEndpoint, security: security(as: name), caller: caller)
    }

    /// Waits until the broker lists `count` instances of `service` (or fails after `timeout`).
    public func waitUntilServing(_ service: String, instances count: Int = 1, timeout: Duration = .seconds(20)) async throws {
        let client = client()
        defer { client.close() }
        let clock = ContinuousClock()
        let started = clock.now
        let startedAt = Date()
        let deadline = started + timeout
        var last = "no answer"
        var (answers, failures) = (0, 0)
        var lastFailure = ""
        // The last check starts after the deadline: a test task that got no thread for a while (a busy
        // machine) still looks once more before it calls the service absent.
        var lastCheck = false
        while !lastCheck {
            lastCheck = clock.now >= deadline
            do {
                let status: Rampart_Bus_V1_BrokerStatusResponse = try await client.call(
                    BrokerAPI.status, Rampart_Bus_V1_BrokerStatusRequest(),
                    timeout: .seconds(1))
                answers += 1
                let found = status.services.first { $0.name == service }?.instances.count ?? 0
                if found == count { return }
                last = "\(found) instances; the broker lists " + status.services.map { "\($0.name) ×\($0.instances.count)" }
                    .joined(separator: ", ")
            } catch {
                failures += 1
                lastFailure = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TimeoutError(
            description: "\(service) never had \(count) instances (\(last)); \(answers) status answers, \(failures) failed "
                + "calls (last: \(lastFailure)) in \(clock.now - started) from \(startedAt); logs in \(logDirectory)\n\(logs)")
    }

    /// Runs the `rampart` CLI against this system.
    public func rampart(_ arguments: String...) async throws -> ChildProcess.Result {
        try await rampart(arguments)
    }

    /// Runs the `rampart` CLI against this system.
    public func rampart(_ arguments: [String]) async throws -> ChildProcess.Result {
        try await ChildProcess.run(Binaries.path("rampart"), arguments, environment: environment)
    }

    /// Runs the `rampart` CLI against this system as operator `name` ("operator", "viewer", ...).
    public func rampart(as name: String, _ arguments: [String]) async throws -> ChildProcess.Result {
        try await ChildProcess.run(Binaries.path("rampart"), arguments, environment: environment(as: name))
    }

    /// Starts a new `bus` on the same endpoints and database, after the old one died (a test killed
    /// it); it becomes `bus`, which `stop()` and `logs` then cover. Fails while the endpoints are taken.
    @discardableResult
    public func restartBus() throws -> ChildProcess {
        lock.lock()
        defer { lock.unlock() }
        restarts += 1
        let process = try ChildProcess(
            Binaries.path("bus"), ["--listen", busEndpoint, "--publish", eventsEndpoint], environment: environment,
            logPath: logDirectory + "/bus-\(restarts + 1).log")
        bus = process
        return process
    }

    /// Every process's log, for failure messages.
    public var logs: String {
        ([bus] + services).map { "== \($0.commandLine)\n\($0.log.suffix(4000))" }.joined(separator: "\n")
    }

    /// Stops every process — services in the reverse order of their start (device agents and workers
    /// before the inventory and storage they report to), then the bus — on a thread of its own; returns
    /// the command lines of those that did not shut down gracefully (SIGTERM → exit 0 within 5 s).
    @discardableResult
    public func stop() async -> [String] {
        await onOwnThread { [self] in stopBlocking() }
    }

    /// `stop()` for a `defer`, which cannot wait: it goes on on a thread of its own. Waiting for processes
    /// to end (up to 5 s each) must not hold a thread of the cooperative pool, which every test of the
    /// process shares (two threads on CI; docs/testing.md).
    public func stopInBackground() {
        Thread.detachNewThread { [self] in _ = stopBlocking() }
    }

    /// `stop()` holding the calling thread until every process has ended.
    @discardableResult
    public func stopBlocking() -> [String] {
        var stuck: [String] = []
        let (services, bus) = lock.withLock { (self.services, self.bus!) }  // `restartBus` replaces `bus`
        for service in services.reversed() where service.isRunning && !service.stopBlocking() {
            stuck.append(service.commandLine)
        }
        if bus.isRunning && !bus.stopBlocking() { stuck.append(bus.commandLine) }
        return stuck
    }

    deinit { stopBlocking() }

    /// A wait that ran out.
    public struct TimeoutError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }
}
