import Foundation
import RampartArchive

#if canImport(Glibc)
import Glibc
#endif

/// Runs a command (posix_spawn + waitpid; Foundation's Process was seen to miss exits here) and returns
/// its exit code and standard output; standard error goes to a file whose text is returned too.
func run(_ executable: String, _ arguments: [String], in directory: String? = nil) throws -> (code: Int32, out: String, err: String) {
    let scratch = NSTemporaryDirectory() + "archive-test-\(UUID().uuidString)"
    defer {
        unlink(scratch + ".out")
        unlink(scratch + ".err")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, scratch + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, scratch + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    var argv = [executable] + arguments
    if let directory {
        // posix_spawn has no portable chdir action: run through the shell's cd.
        argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory, executable] + arguments
    }
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    var pid = pid_t()
    let result = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
    guard result == 0 else { throw ArchiveError(.notFound, "cannot start \(argv[0])") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let out = (try? String(contentsOfFile: scratch + ".out", encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: scratch + ".err", encoding: .utf8)) ?? ""
    return (code, out, err)
}

/// A fresh temporary folder.
func temporaryFolder() throws -> String {
    let path = NSTemporaryDirectory() + "archive-test-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Deterministic pseudo-random bytes.
func bytes(_ count: Int, seed: UInt64 = 1) -> Data {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var data = Data(capacity: count)
    for _ in 0..<count {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        data.append(UInt8(truncatingIfNeeded: state >> 33))
    }
    return data
}

/// A manifest with realistic facts.
func sampleManifest() -> BackupManifest {
    BackupManifest(
        deviceId: "7d0f6a4e-2f7b-4c1e-9a55-0c1d2e3f4a5b", deviceName: "fw-edge-01", serial: "JAD2411A0B1",
        managerId: "rampart-manager", model: "FPR-3120", platform: "physical", hypervisor: "", networkModules: 1,
        interfaces: [.init(type: "1GbE-RJ45", count: 8), .init(type: "10GbE-SFP+", count: 8)],
        software: .init(version: "7.4.1", patch: 2), role: .standalone, managementIp: "10.0.0.11",
        createdAt: "2025-01-31T12:00:00Z", jobId: "job-1")
}

/// Files of a small configuration tree.
func sampleFiles() -> [String: Data] {
    [
        "running-config": Data("hostname fw-edge-01\n".utf8),
        "policies/access-policy.json": bytes(3000, seed: 2),
        "pki/web.crt": Data("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".utf8),
        "pki/web.key": Data("-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n".utf8),
        "empty": Data(),
    ]
}
