import Crypto
import Foundation
import RampartAPI
import RampartBus
import RampartJSON
import RampartProto
import RampartTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Helpers of the fault-injection tests (P10, docs/faults.md): polling with generous deadlines, a private
// PostgreSQL server that a test may stop, a backup system whose storage folder a test prepares first,
// and the figures each test reports (`FaultFigures`).

/// A failed wait or check of a fault test, with what was last seen.
struct FaultFailure: Error, CustomStringConvertible {
    var description: String
}

/// Polls `probe` every `every` until it returns a value or `timeout` passes (then throws with `what`
/// and the last thing `probe` reported). A liveness bound, never a speed check: keep it generous.
func eventually<T>(
    _ what: String, timeout: Duration = .seconds(120), every: Duration = .milliseconds(200),
    _ probe: () async throws -> (T?, String)
) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var last = "nothing yet"
    while true {
        let (value, seen) = try await probe()
        if let value { return value }
        last = seen
        if clock.now >= deadline { throw FaultFailure(description: "timed out waiting until \(what); last seen: \(last)") }
        try await Task.sleep(for: every)
    }
}

/// Runs `body`, failing (instead of hanging) if it has not ended after `limit`.
func bounded<T: Sendable>(_ what: String, _ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw FaultFailure(description: "\(what) did not end within \(limit): it hangs")
        }
        return value
    }
}

extension RunningSystem {
    /// `rampart backup start TARGETS --output json` (not waiting): the queued job.
    func startJob(_ targets: String...) async throws -> Rampart_Backup_V1_Job { try await startJob(targets) }

    /// `rampart backup start TARGETS --output json` (not waiting): the queued job.
    func startJob(_ targets: [String]) async throws -> Rampart_Backup_V1_Job {
        let result = try await rampart(["backup", "start"] + targets + ["--output", "json", "--timeout", "30"])
        guard result.exitCode == 0, let job = try? OperatorJSON.decode(Rampart_Backup_V1_Job.self, from: result.stdout) else {
            throw FaultFailure(description: "backup start \(targets) failed: \(result)")
        }
        return job
    }

    /// The job as `rampart jobs show` sees it now (nil while the CLI cannot get an answer).
    func job(_ id: String) async throws -> (Rampart_Backup_V1_Job?, String) {
        let result = try await rampart(["jobs", "show", id, "--output", "json", "--timeout", "10"])
        guard result.exitCode == 0, let job = try? OperatorJSON.decode(Rampart_Backup_V1_Job.self, from: result.stdout) else {
            return (nil, "\(result)")
        }
        return (job, "\(job.state.label): \(job.tasks.map { "\($0.state.label) a\($0.attempts) \($0.message)" })")
    }

    /// Waits until job `id` is finished, whatever faults happen meanwhile; returns it.
    func finishedJob(_ id: String, timeout: Duration = .seconds(240)) async throws -> Rampart_Backup_V1_Job {
        try await eventually("job \(id) finished", timeout: timeout, every: .milliseconds(500)) {
            let (job, seen) = try await job(id)
            return (job.flatMap { $0.state.isFinishedState ? $0 : nil }, seen)
        }
    }

    /// The backup records of job `id` (`rampart backups list --job`).
    func backups(job id: String) async throws -> [Rampart_Backup_V1_Backup] {
        let result = try await rampart(["backups", "list", "--job", id, "--output", "json", "--timeout", "30"])
        guard result.exitCode == 0 else { throw FaultFailure(description: "backups list --job \(id): \(result)") }
        return try OperatorJSON.decode(Rampart_Backup_V1_ListBackupsResponse.self, from: result.stdout).backups
    }

    /// Every object storage lists (`Storage/ListObjects`).
    func storedObjects() async throws -> [Rampart_Storage_V1_ObjectInfo] {
        let client = client(caller: "fault-test")
        defer { client.close() }
        let response: Rampart_Storage_V1_ListObjectsResponse = try await client.call(
            StorageAPI.listObjects, Rampart_Storage_V1_ListObjectsRequest(),
            timeout: .seconds(30), idempotent: true)
        return response.objects
    }

    /// Downloads a backup with the CLI (which checks its SHA-256) into `folder`; returns the bytes.
    func downloaded(_ backup: Rampart_Backup_V1_Backup, into folder: String) async throws -> Data {
        let path = folder + "/dl-\(backup.id)-\(backup.fileName)"
        let result = try await rampart(["backups", "download", backup.id, "-o", path, "--timeout", "60"])
        guard result.exitCode == 0 else { throw FaultFailure(description: "download of \(backup.fileName): \(result)") }
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// Downloads each backup and expects its bytes to hash to the SHA-256 on its record.
    func expectIntact(_ backups: [Rampart_Backup_V1_Backup], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for backup in backups {
            let bytes = try await downloaded(backup, into: logDirectory)
            #expect(SHA256.hash(data: bytes).hexString == backup.sha256, "\(backup.fileName)", sourceLocation: sourceLocation)
        }
    }
}

extension Rampart_Backup_V1_JobState {
    var isFinishedState: Bool {
        switch self {
        case .succeeded, .partiallySucceeded, .failed, .cancelled: true
        default: false
        }
    }
}

/// Files under `folder` (recursively), relative paths, with their sizes.
func filesUnder(_ folder: String) -> [String: Int] {
    var found: [String: Int] = [:]
    guard let walker = FileManager.default.enumerator(atPath: folder) else { return found }
    while let relative = walker.nextObject() as? String {
        let path = folder + "/" + relative
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            found[relative] = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
        }
    }
    return found
}

// MARK: figures

/// What one fault test measured, for the table in docs/faults.md: printed as one line
/// `FAULT-FIGURES {json}` on standard output, which `dev/fault-figures.sh` collects. Reported, never
/// asserted (no timed assertions: docs/testing.md).
struct FaultFigures: Encodable {
    /// The test function.
    var test: String
    /// The fault injected, in a few words.
    var fault: String
    /// How many backups the test's jobs must store: one per target of each job expected to succeed
    /// (with `unit` "events": how many events the subscriber must receive).
    var targets: Int
    /// How many backup records those jobs have (events received).
    var stored: Int
    /// Records beyond the first of one target in one job (events received more than once).
    var duplicates: Int
    /// How long the test kept the fault in place before ending it itself (restarting what it killed,
    /// thawing what it froze); nil when the system had to cope on its own.
    var heldSeconds: Double?
    /// Seconds from `recovery`'s first event to its second.
    var recoverSeconds: Double
    /// What `recoverSeconds` measures: "from → until".
    var recovery: String
    var unit = "backups"

    /// Figures over the backup records of a test's jobs (`expected` of them must exist).
    init(
        test: String = #function, fault: String, expected: Int, backups: [Rampart_Backup_V1_Backup],
        held: Double? = nil, recover: Double, recovery: String
    ) {
        self.test = String(test.prefix { $0 != "(" })
        self.fault = fault
        targets = expected
        stored = backups.count
        duplicates = backups.count - Set(backups.map { "\($0.jobID) \($0.ownerID)" }).count
        heldSeconds = held
        recoverSeconds = recover
        self.recovery = recovery
    }

    /// Figures over events: `expected` to be received, `received` their sequence numbers.
    init(
        test: String = #function, fault: String, expected: Int, received: [UInt64], held: Double?, recover: Double,
        recovery: String
    ) {
        self.test = String(test.prefix { $0 != "(" })
        self.fault = fault
        targets = expected
        stored = received.count
        duplicates = received.count - Set(received).count
        heldSeconds = held
        recoverSeconds = recover
        self.recovery = recovery
        unit = "events"
    }

    /// Writes the line to standard output in one write (unbuffered: not lost if the test process dies).
    func report() {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var rounded = self
        rounded.recoverSeconds = (recoverSeconds * 10).rounded() / 10
        rounded.heldSeconds = heldSeconds.map { ($0 * 10).rounded() / 10 }
        let json = (try? encoder.encode(rounded)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        FileHandle.standardOutput.write(Data("FAULT-FIGURES \(json)\n".utf8))
    }
}

/// Seconds from `start` to `end` (wall clock: a job's finish time comes from the database server's clock,
/// on the same machine).
func seconds(from start: Date, to end: Date = Date()) -> Double { end.timeIntervalSince(start) }

extension Rampart_Backup_V1_Job {
    /// When the job finished (the database's clock).
    var finishedAt: Date { Date(timeIntervalSince1970: Double(finishedUnixMs) / 1000) }
}

// MARK: a private PostgreSQL server

/// `dev/pg.sh`, found from this file's location (Tests/IntegrationTests/ → ../../dev/pg.sh).
let faultPgScript = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("dev/pg.sh").path

/// A PostgreSQL server of one test (dev/pg.sh in a folder of its own), which the test may stop and
/// start again without touching the shared test server of parallel tests.
struct PrivatePostgres: Sendable {
    let directory: String
    let port: String

    init() {
        directory = NSTemporaryDirectory() + "rampart-fault-pg-\(UUID().uuidString.prefix(8))"
        port = String(FreePort.next())
    }

    /// Starts (or restarts) the server; returns its connection string.
    @discardableResult
    func start() async throws -> String { try await Self.script(["start", directory, port]) }

    /// Stops the server (fast mode).
    func stop() async throws { try await Self.script(["stop", directory]) }

    /// Stops it if running and deletes its folder.
    func destroy() async {
        _ = try? await Self.script(["stop", directory])
        try? FileManager.default.removeItem(atPath: directory)
    }

    @discardableResult
    private static func script(_ arguments: [String]) async throws -> String {
        let result = try await ChildProcess.run("/bin/bash", [faultPgScript] + arguments, environment: ["PG_FAST": "1"])
        guard result.exitCode == 0 else {
            throw FaultFailure(description: "dev/pg.sh \(arguments.joined(separator: " ")) failed: \(result)")
        }
        return result.stdout.split(separator: "\n").last.map(String.init) ?? ""
    }
}

// MARK: mounting

/// Mounts a tmpfs of `size` on `directory` (needs root / CAP_SYS_ADMIN); throws a clear error if it cannot.
func mountTmpfs(_ directory: String, size: String) throws {
    let status = runSync("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0700", "tmpfs", directory])
    guard status.code == 0 else {
        throw FaultFailure(
            description: "cannot mount a \(size) tmpfs on \(directory) (the disk-full test needs root or CAP_SYS_ADMIN): \(status.output)")
    }
}

/// Unmounts `directory` (lazily, so a process still holding a file there cannot keep it mounted).
func unmount(_ directory: String) {
    _ = runSync("/bin/umount", ["-l", directory])
}

private func runSync(_ executable: String, _ arguments: [String]) -> (code: Int32, output: String) {
    let output = NSTemporaryDirectory() + "rampart-fault-cmd-\(UUID().uuidString)"
    defer { unlink(output) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid = pid_t()
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard spawned == 0 else { return (-1, "cannot run \(executable): \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), text)
}

extension Digest {
    /// Lower-case hex.
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
