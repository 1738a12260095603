import Foundation
import RampartAPI
import RampartBus
import RampartProto
import RampartTesting
import Testing

/// A process out of file descriptors must say so and keep serving what it can (docs/device-agent.md,
/// "How many devices a process runs"): the device simulator with a fleet larger than its open-file limit,
/// over real processes.
@Suite("Resources: a fleet larger than its process may open files for (real processes)", .serialized)
struct FleetLimitsTests {
    @Test("P10: a fleet of 80 devices in a process that may open 600 files runs the 57 that fit, names the others in its log, stays up, and those it runs serve and are backed up")
    func fleetPastItsOpenFileLimit() async throws {
        var spec = FleetSpec()
        for index in 0..<80 { spec.device(String(format: "fw-lim-%03d", index)) }
        let system = try RunningSystem(heartbeatMs: 500)
        do {
            try system.start("inventory")
            try system.start("storage", ["--dir", system.logDirectory + "/storage"])
            try system.start(
                "backup-worker",
                ["--instance-id", "worker-1", "--retry-base-seconds", "0", "--schedule-interval-ms", "200"])
            let specPath = system.logDirectory + "/fleet.json"
            try JSONEncoder().encode(spec).write(to: URL(fileURLWithPath: specPath))
            try system.addDeviceKeys(spec.devices.map(\.name))
            // (600 − 256 kept for the process itself) / 6 files per device = 57 devices.
            let fleet = try system.start(
                "device-agent", ["fleet", "--dir", system.logDirectory + "/fleet", "--spec", specPath, "--register"],
                openFiles: 600)
            try await system.waitUntilServing(InventoryAPI.serviceName)
            try await system.waitUntilServing(BackupAPI.serviceName)

            let client = system.client()
            defer { client.close() }
            var connected: [String] = []
            for _ in 0..<600 {
                let listed: Rampart_Inventory_V1_ListDevicesResponse? = try? await client.call(
                    InventoryAPI.listDevices, Rampart_Inventory_V1_ListDevicesRequest(), timeout: .seconds(5))
                connected = (listed?.devices ?? []).filter(\.connected).map(\.name).sorted()
                if connected.count >= 57 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(connected == (0..<57).map { String(format: "fw-lim-%03d", $0) }, "the first 57 of the spec run")
            #expect(fleet.isRunning, "the fleet process is up")
            #expect(fleet.log.contains("not-run=23") && fleet.log.contains("first-not-run=fw-lim-057"), "\(fleet.log.suffix(2000))")
            #expect(!fleet.log.contains("Too many open files"), "it never ran out")

            // What it runs serves: a backup of one of its devices.
            let backup = try await system.rampart("backup", "start", "fw-lim-056", "--wait", "--timeout", "120")
            #expect(backup.exitCode == 0, "\(backup)")
            #expect(fleet.isRunning)
            let later: Rampart_Inventory_V1_ListDevicesResponse = try await client.call(
                InventoryAPI.listDevices, Rampart_Inventory_V1_ListDevicesRequest(), timeout: .seconds(10))
            #expect(later.devices.filter(\.connected).count == 57)
        } catch {
            Issue.record("logs:\n\(system.logs)")
            await system.stop()
            throw error
        }
        await system.stop()
    }
}
