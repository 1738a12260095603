import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a system program (scp, curl) to completion without a shell: stdin from /dev/null, stdout and
/// stderr captured, killed (SIGTERM, then SIGKILL) when it overruns its timeout or the task is cancelled.
/// Uses posix_spawn and waitpid so the calling task is never blocked while the program runs.
struct ExternalCommand: Sendable {
    /// How a program ended.
    struct Result: Sendable {
        /// Exit status (128 + signal when it was killed by one).
        var status: Int32
        /// What it wrote on stdout.
        var stdout: String
        /// What it wrote on stderr.
        var stderr: String

        /// stderr (or stdout) trimmed to one readable paragraph.
        var diagnostics: String {
            let text = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            let chosen = text.isEmpty ? stdout.trimmingCharacters(in: .whitespacesAndNewlines) : text
            return chosen.count > 600 ? String(chosen.prefix(600)) + "…" : chosen
        }
    }

    /// The program's absolute path.
    var executable: String
    /// Its arguments (argv[1...]).
    var arguments: [String]
    /// The longest it may run.
    var timeout: Duration

    /// Runs the program; throws when it cannot be started, overruns `timeout` or the task is cancelled.
    func run() async throws -> Result {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw AgentError("\(executable) is not installed (or not executable)")
        }
        let scratch = NSTemporaryDirectory() + "rampart-cmd-\(UUID().uuidString)"
        defer {
            unlink(scratch + ".out")
            unlink(scratch + ".err")
        }
        let pid = try spawn(stdout: scratch + ".out", stderr: scratch + ".err")
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var status: Int32 = 0
        do {
            while true {
                let reaped = waitpid(pid, &status, WNOHANG)
                if reaped == pid { break }
                if reaped == -1 && errno != EINTR {
                    throw AgentError("waiting for \(executable) failed: \(String(cString: strerror(errno)))")
                }
                if clock.now >= deadline {
                    Self.terminate(pid)
                    throw AgentError("\(executable) did not finish within \(timeout); it was stopped")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        } catch is CancellationError {
            Self.terminate(pid)
            throw CancellationError()
        }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(
            status: code,
            stdout: (try? String(contentsOfFile: scratch + ".out", encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: scratch + ".err", encoding: .utf8)) ?? "")
    }

    /// SIGTERM, up to 2 s of grace, then SIGKILL; always reaps the child.
    private static func terminate(_ pid: pid_t) {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }

    private func spawn(stdout: String, stderr: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else {
            throw AgentError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }
}
