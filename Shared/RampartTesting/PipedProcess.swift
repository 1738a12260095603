import Foundation

/// A program started by a test with its stdin on a pipe the test writes to, stdout and stderr in files.
public final class PipedProcess: @unchecked Sendable {
    public let pid: pid_t
    public let stdoutPath: String
    public let stderrPath: String
    private var input: Int32
    private let lock = NSLock()
    private var exitStatus: Int32?

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        signal(SIGPIPE, SIG_IGN)
        let base = NSTemporaryDirectory() + "device-cli-\(UUID().uuidString.prefix(8))"
        stdoutPath = base + ".out"
        stderrPath = base + ".err"
        // Close-on-exec: the test process starts other children while this one runs (other tests, in
        // parallel); a child that inherited the write end would keep this stdin open, and the program
        // would never see its end of file. (The child's stdin is a dup2 of the read end, which is not.)
        // Made on the thread that starts every child, so no child starts between pipe() and fcntl().
        var fds: [Int32] = [0, 0]
        let failure: Int32 = ParentDeath.spawningThread.run {
            var pair: [Int32] = [0, 0]
            guard pipe(&pair) == 0 else { return errno }
            for fd in pair { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            fds = pair
            return 0
        }
        guard failure == 0 else {
            throw RunningSystem.TimeoutError(description: "pipe failed: \(String(cString: strerror(failure)))")
        }
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(
                executable, arguments, environment: environment, stdout: stdoutPath, stderr: stderrPath, stdin: fds[0],
                closeInChild: [fds[1]])
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[0])
        self.pid = pid
        input = fds[1]
    }

    /// Writes `line` and a newline to its stdin.
    public func send(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
    }

    /// Closes its stdin (end of file).
    public func closeInput() {
        lock.withLock {
            if input >= 0 { close(input) }
            input = -1
        }
    }

    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits until stdout holds `text` `count` times; throws with the output so far when it does not in time.
    public func waitForOutput(_ text: String, count: Int = 1, timeout: Duration = .seconds(20)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if stdout.components(separatedBy: text).count - 1 >= count { return }
            if !isRunning { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        if stdout.components(separatedBy: text).count - 1 >= count { return }
        throw RunningSystem.TimeoutError(description: "never saw '\(text)' (×\(count)).\nstdout:\n\(stdout)\nstderr:\n\(stderr)")
    }

    public var isRunning: Bool {
        lock.withLock {
            if exitStatus != nil { return false }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                LiveChildren.reaped(pid)
                exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                return false
            }
            return true
        }
    }

    /// Waits for it to end (SIGKILL after `timeout`) and returns its exit status.
    public func waitForExit(timeout: Duration = .seconds(20)) async throws -> Int32 {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while isRunning && clock.now < deadline { try await Task.sleep(for: .milliseconds(25)) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { usleep(5_000) }
            return -1
        }
        return lock.withLock { exitStatus ?? -1 }
    }

    deinit {
        closeInput()
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { usleep(5_000) }
        }
        unlink(stdoutPath)
        unlink(stderrPath)
    }
}
