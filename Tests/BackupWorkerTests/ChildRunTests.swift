import Foundation
import RampartRPC
import RampartTesting
import Testing

@testable import BackupWorkerService

/// The drill's child process (P18, docs/drills.md): a drill that hangs or is cancelled never leaves a
/// `device-agent drill` running. Children here are /bin/sh scripts that write their pid and sleep. Every
/// wait is bounded (a guard against hangs, never a speed check).
@Suite("P18: a drill's child process ends with its task")
struct ChildRunTests {
    /// A folder for one test's files.
    static func folder() throws -> String {
        let path = FileManager.default.temporaryDirectory.path + "/child-run-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs `script` with /bin/sh through `ChildRun.run`.
    static func run(_ script: String, in folder: String, timeout: Duration) async throws -> Int32 {
        try await ChildRun.run(
            "/bin/sh", ["-c", script], stdout: folder + "/out", stderr: folder + "/err", timeout: timeout)
    }

    /// The pid the script wrote to `file`, once it has.
    static func pid(in file: String) async throws -> pid_t {
        for _ in 0..<3000 {
            if let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return pid
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RunningSystem.TimeoutError(description: "the child never wrote its pid")
    }

    /// Whether process `pid` is gone (reaped, or a zombie no more running), waiting up to 30 s for it.
    static func gone(_ pid: pid_t) async throws -> Bool {
        for _ in 0..<3000 {
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?
                .split(separator: ")").last?.split(separator: " ").first
            if state == nil || state == "Z" { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test("P18: a child that outlives its timeout is stopped, and the run fails DEADLINE_EXCEEDED")
    func timeout() async throws {
        let folder = try Self.folder()
        let task = Task { try await Self.run("echo $$ > \(folder)/pid; exec sleep 60", in: folder, timeout: .milliseconds(500)) }
        let pid = try await Self.pid(in: folder + "/pid")
        await #expect(throws: RPCError.self) { _ = try await task.value }
        if case .failure(let error as RPCError) = await task.result { #expect(error.code == .deadlineExceeded, "\(error)") }
        #expect(try await Self.gone(pid))
    }

    @Test("P18: a child that ignores SIGTERM is killed (SIGKILL) after the grace period")
    func ignoresTerm() async throws {
        let folder = try Self.folder()
        // The shell ignores TERM and waits on a sleep of its own: only SIGKILL ends it.
        let script = "trap '' TERM; echo $$ > \(folder)/pid; while true; do sleep 1; done"
        let task = Task { try await Self.run(script, in: folder, timeout: .milliseconds(300)) }
        let pid = try await Self.pid(in: folder + "/pid")
        await #expect(throws: RPCError.self) { _ = try await task.value }
        #expect(try await Self.gone(pid), "still running after SIGTERM and the grace period")
    }

    @Test("P18: a task cancelled mid-run stops its child; one cancelled before its child started never starts it")
    func cancelled() async throws {
        let folder = try Self.folder()
        let running = Task { try await Self.run("echo $$ > \(folder)/pid; exec sleep 60", in: folder, timeout: .seconds(120)) }
        let pid = try await Self.pid(in: folder + "/pid")
        running.cancel()
        await #expect(throws: CancellationError.self) { _ = try await running.value }
        #expect(try await Self.gone(pid))

        let early = try Self.folder()
        let never = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await Self.run("echo started > \(early)/started; exec sleep 60", in: early, timeout: .seconds(120))
        }
        await #expect(throws: CancellationError.self) { _ = try await never.value }
        #expect(!FileManager.default.fileExists(atPath: early + "/started"), "a cancelled drill's child never runs")
    }
}
