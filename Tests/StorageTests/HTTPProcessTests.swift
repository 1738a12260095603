import Foundation
import RampartAPI
import RampartBus
import RampartTesting
import Testing

@testable import StorageService

@Suite("L2: the storage executable's HTTP endpoint (real processes)")
struct HTTPProcessTests {
    /// Polls `url` until something answers (curl reports 000 while the port is closed).
    static func firstAnswer(_ url: String, timeout: Duration = .seconds(20)) async throws -> CurlResult {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let got = try await curl(url, ["--max-time", "5"])
            if got.status != 0 || clock.now >= deadline { return got }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test(
        "L2: storage serves HTTP beside the bus (503 without link-signer); a taken port keeps the bus up; SIGTERM"
    )
    func executable() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        let port = FreePort.next()
        let dir = NSTemporaryDirectory() + "rampart-storage-http-\(UUID().uuidString.prefix(8))"
        let first = try system.start("storage", ["--dir", dir, "--http-port", "\(port)"])
        try await system.waitUntilServing(StorageAPI.serviceName)
        do {
            let base = "http://127.0.0.1:\(port)"
            // No link-signer is running: the link cannot be checked, so 503 within the verifier's deadline.
            let clock = ContinuousClock()
            let started = clock.now
            let refused = try await Self.firstAnswer(base + "/v1/backups/b-1/fw-1.tar?sig=x")
            #expect(refused.status == 503)
            #expect(refused.header("Retry-After") == "5")
            #expect(clock.now - started < .seconds(20), "ends by the verifier's deadline, never hangs")
            let elsewhere = try await curl(base + "/metrics")
            #expect(elsewhere.status == 404)
            #expect(first.log.contains("HTTP downloads listening"))
            #expect(!first.log.contains("sig=x"))

            // A second instance on the same host and port: its HTTP endpoint cannot listen, its bus service runs.
            let second = try system.start("storage", ["--dir", dir, "--http-port", "\(port)"])
            try await system.waitUntilServing(StorageAPI.serviceName, instances: 2)
            #expect(second.isRunning)
            let clock2 = ContinuousClock()
            let deadline = clock2.now + .seconds(10)
            while !second.log.contains("HTTP downloads stopped") && clock2.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(second.log.contains("HTTP downloads stopped"))
            #expect(await second.stop(), "the second storage did not stop gracefully:\n\(second.log)")
            #expect(await first.stop(), "storage did not stop gracefully on SIGTERM:\n\(first.log)")
        } catch {
            Issue.record("logs:\n\(system.logs)")
            throw error
        }
    }

    @Test("L2: --http-port 0 disables the HTTP endpoint; an invalid port is refused")
    func disabled() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        let dir = NSTemporaryDirectory() + "rampart-storage-http-\(UUID().uuidString.prefix(8))"
        let storage = try system.start("storage", ["--dir", dir, "--http-port", "0"])
        try await system.waitUntilServing(StorageAPI.serviceName)
        #expect(storage.log.contains("HTTP downloads disabled"))
        #expect(!storage.log.contains("HTTP downloads listening"))
        #expect(await storage.stop())
        let invalid = try await ChildProcess.run(
            Binaries.path("storage"),
            ["--dir", dir, "--http-port", "70000", "--database", "host=/nonexistent dbname=x"])
        #expect(invalid.exitCode == 64)
        #expect(invalid.stderr.contains("--http-port"))
    }
}
