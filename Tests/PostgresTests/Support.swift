import Dispatch
import Foundation
import Postgres
import RampartTesting

/// A connection to a fresh database of its own on the test server.
func freshConnection() throws -> PostgresConnection {
    try PostgresConnection(connectionString: TestDatabase.create())
}

/// `dev/pg.sh`, found from this file's location (Tests/PostgresTests/ → ../../dev/pg.sh).
let pgScript = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("dev/pg.sh")

struct ScriptFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs `dev/pg.sh ARGS` (with PG_FAST=1) and returns the last line it printed on stdout.
///
/// Uses posix_spawn and waitpid: Foundation's `Process.waitUntilExit` was seen to miss the child's exit here.
@discardableResult
func pg(_ arguments: String...) async throws -> String {
    try await onOwnThread {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pgsh-\(UUID().uuidString)")
        let outPath = scratch.path + ".out"
        let errPath = scratch.path + ".err"
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        var environment = ProcessInfo.processInfo.environment
        environment["PG_FAST"] = "1"
        let argv = (["/bin/bash", pgScript.path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, "/bin/bash", &actions, nil, argv, envp)
        guard spawned == 0 else { throw ScriptFailure(description: "cannot run dev/pg.sh: errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw ScriptFailure(description: "waitpid failed: errno \(errno)") }
        }
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw ScriptFailure(
                description: "dev/pg.sh \(arguments.joined(separator: " ")) failed (wait status \(status)): \(err)")
        }
        return out.split(separator: "\n").last.map(String.init) ?? ""
    }
}
