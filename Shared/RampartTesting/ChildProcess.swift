import Foundation
import RampartBasics
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A program started by a test (a Rampart executable), its output going to a log file.
/// Uses posix_spawn and waitpid directly: Foundation's `Process` was seen to miss children's exits here.
public final class ChildProcess: @unchecked Sendable {
    /// The process id.
    public let pid: pid_t
    /// Where its standard output and error go.
    public let logPath: String
    /// The command line, for messages.
    public let commandLine: String
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable` with `arguments`, adding `environment` to this process's environment.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], logPath: String) throws {
        self.logPath = logPath
        self.commandLine = ([executable] + arguments).joined(separator: " ")
        pid = try Self.spawn(executable, arguments, environment: environment, stdout: logPath, stderr: logPath)
    }

    /// Whether it is still running (reaps it if it ended).
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            exitStatus = status
            LiveChildren.reaped(pid)
            return false
        }
        return result == 0
    }

    /// Sends `signal` (SIGTERM, SIGKILL, SIGSTOP, ...).
    public func send(_ signal: Int32) {
        _ = kill(pid, signal)
    }

    /// Sends SIGTERM and waits up to `timeout` seconds, then SIGKILL. Returns whether it ended by
    /// itself with exit status 0 in time (a graceful shutdown). The waiting happens on a thread of its own
    /// (`onOwnThread`), never on the cooperative pool the process's other tests share.
    @discardableResult
    public func stop(timeout: Double = 5) async -> Bool {
        await onOwnThread { [self] in stopBlocking(timeout: timeout) }
    }

    /// `stop()` for a `defer`, which cannot wait: the process is stopped (and reaped) on a thread of its own.
    public func stopInBackground(timeout: Double = 5) {
        Thread.detachNewThread { [self] in _ = stopBlocking(timeout: timeout) }
    }

    /// `stop()` holding the calling thread until the process has ended.
    @discardableResult
    public func stopBlocking(timeout: Double = 5) -> Bool {
        guard isRunning else { return false }
        send(SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning {
            send(SIGKILL)
            while isRunning { usleep(10_000) }
            return false
        }
        return lock.withLock { exitStatus } == 0
    }

    /// Kills it at once (SIGKILL) and reaps it.
    public func kill9() {
        send(SIGKILL)
        while isRunning { usleep(5_000) }
    }

    /// What it has written so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit {
        if isRunning { kill9() }
    }

    /// The result of a command run to completion.
    public struct Result: Sendable, CustomStringConvertible {
        public var exitCode: Int32
        public var stdout: String
        public var stderr: String
        public var description: String { "exit \(exitCode)\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    /// Runs `executable` to completion on a thread of its own and returns its exit code and output.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) async throws -> Result {
        try await onOwnThread {
            let scratch = NSTemporaryDirectory() + "rampart-run-\(UUID().uuidString)"
            defer {
                unlink(scratch + ".out")
                unlink(scratch + ".err")
            }
            let pid = try spawn(
                executable, arguments, environment: environment, stdout: scratch + ".out", stderr: scratch + ".err")
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            LiveChildren.reaped(pid)
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return Result(
                exitCode: code,
                stdout: (try? String(contentsOfFile: scratch + ".out", encoding: .utf8)) ?? "",
                stderr: (try? String(contentsOfFile: scratch + ".err", encoding: .utf8)) ?? "")
        }
    }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `executable` with stdout and stderr appended to files and stdin from `stdin` (a pipe's read
    /// end, closed in the child together with `closeInChild`) or /dev/null.
    static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String], stdout: String, stderr: String,
        stdin: Int32? = nil, closeInChild: [Int32] = []
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
            for fd in [stdin] + closeInChild { posix_spawn_file_actions_addclose(&actions, fd) }
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        if stderr == stdout {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        }
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // The child dies with this test process even when it is killed (SIGKILL, a crash) and no `atexit`
        // runs: `setpriv` sets the parent-death signal, then runs the program in its place (same pid).
        let command = ParentDeath.wrapper.map { $0 + [executable] } ?? [executable]
        let argv = (command + arguments).map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        // The kernel sends the parent-death signal when the *thread* that started the child ends, and the
        // threads of Swift's pool come and go: every child is started by the one thread that lives as long
        // as the process.
        let result = ParentDeath.spawningThread.run { posix_spawn(&pid, command[0], &actions, nil, argv, envp) }
        guard result == 0 else {
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        LiveChildren.started(pid)
        return pid
    }
}

/// Where the built executables are: `RAMPART_BIN_DIR`, or the folder of the running test bundle.
public enum Binaries {
    /// The folder holding `bus`, `inventory`, `rampart`.
    public static var directory: String {
        if let dir = ProcessInfo.processInfo.environment["RAMPART_BIN_DIR"], !dir.isEmpty { return dir }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("bus").path) { return url.path }
        }
        return FileManager.default.currentDirectoryPath + "/.build/debug"
    }

    /// The path of executable `name`.
    public static func path(_ name: String) -> String { directory + "/" + name }
}

/// Free TCP ports on 127.0.0.1 for servers the tests start.
///
/// Ports come from 20000–32767, below Linux's ephemeral range (32768–60999), so that the local port of
/// some outgoing connection cannot take a port between the moment it is handed out and the moment the
/// server binds it; each port is handed out once per test process, and only after a bind to it succeeded.
public enum FreePort {
    private static let handedOut = Mutex(Set<Int>())

    /// A port nothing listens on right now, not handed out before by this process.
    public static func next() -> Int {
        while true {
            let port = Int.random(in: 20_000...32_767)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if canBind(port) { return port }
        }
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        } == 0
    }
}

/// Every child this test process started and has not reaped yet. When the process exits they are killed
/// (SIGKILL) and reaped: a stop still going on in the background (`stopInBackground` in the last test's
/// `defer`) or a test that never stopped its processes leaves nothing running after the test run.
enum LiveChildren {
    private static let pids = Mutex(Set<pid_t>())
    private static let atExit: Void = { atexit { LiveChildren.killAll() } }()

    static func started(_ pid: pid_t) {
        _ = atExit
        pids.withLock { _ = $0.insert(pid) }
    }

    /// After `waitpid` returned it: the pid may be reused from now on, so it must not be killed later.
    static func reaped(_ pid: pid_t) {
        _ = pids.withLock { $0.remove(pid) }
    }

    private static func killAll() {
        for pid in pids.withLock({ $0 }) {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        }
    }
}

/// How a test's children die with the test process.
enum ParentDeath {
    /// `setpriv --pdeathsig KILL --` (util-linux), or nil where there is no setpriv (then only `LiveChildren`
    /// and dev/test.sh's check for leftovers catch a child left behind).
    static let wrapper: [String]? =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") ? ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"] : nil

    static let spawningThread = SpawningThread()
}

/// One thread, started once and never ended, that runs the closures given to `run` one after the other.
final class SpawningThread: @unchecked Sendable {
    private final class Job {
        var body: (() -> Void)?
        let done = DispatchSemaphore(value: 0)
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private let condition = NSCondition()
    private var jobs: [Job] = []

    init() {
        Thread.start(named: "rampart-testing-spawn") { [self] in loop() }
    }

    /// Runs `body` on the spawning thread and returns its result; the caller waits (a spawn takes milliseconds).
    func run<T>(_ body: () -> T) -> T {
        withoutActuallyEscaping(body) { body in
            var result: T?
            let job = Job { result = body() }
            condition.lock()
            jobs.append(job)
            condition.signal()
            condition.unlock()
            job.done.wait()
            return result!
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.body?()
            job.body = nil  // released before the caller goes on: `body` must not outlive `run`
            job.done.signal()
        }
    }
}
