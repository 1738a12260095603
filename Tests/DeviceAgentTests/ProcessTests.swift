import Crypto
import DeviceAgentCore
import Foundation
import InventoryService
import RampartAPI
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC
import RampartTesting
import Testing

@Suite("Device agent: over real processes (bus, inventory, device-agent)", .serialized)
struct DeviceAgentProcessTests {
    /// Polls inventory until `device` satisfies `condition`.
    static func waitForDevice(
        _ client: BusClient, _ name: String, timeout: Duration = .seconds(20),
        until condition: (Rampart_Inventory_V1_Device) -> Bool
    ) async throws -> Rampart_Inventory_V1_Device {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var request = Rampart_Inventory_V1_GetDeviceRequest()
        request.device = name
        var last = "not found"
        while clock.now < deadline {
            if let response: Rampart_Inventory_V1_DeviceResponse = try? await client.call(
                InventoryAPI.getDevice, request, timeout: .seconds(2))
            {
                if condition(response.device) { return response.device }
                last = "connected=\(response.device.connected)"
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RunningSystem.TimeoutError(description: "device \(name) never reached the expected state (\(last))")
    }

    @Test("B5, B11, B12: run --register appears connected, answers Describe, exports in chunks over the bus")
    func registerDescribeExport() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        let folder = NSTemporaryDirectory() + "device-agent-it-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let facts = sampleFacts(name: "fw-it-01", serial: "JADIT0001", configSize: 2_500_000)
        let init_ = try await ChildProcess.run(
            Binaries.path("device-agent"),
            [
                "init", "--dir", folder, "--name", facts.name, "--serial", facts.serial, "--model", facts.model,
                "--platform", "physical", "--software", "7.4.1", "--patch", "2", "--network-modules", "1",
                "--interface", "1GbE-RJ45=8", "--management-ip", "10.0.0.11", "--config-size", "2500000",
            ])
        #expect(init_.exitCode == 0, "\(init_)")
        try system.start("inventory")
        try await system.waitUntilServing("inventory")
        try system.addDeviceKeys([facts.name])
        let agent = try system.start("device-agent", ["run", "--dir", folder, "--register", "--presence-interval-ms", "300"])
        let client = system.client()
        defer { client.close() }

        let device = try await Self.waitForDevice(client, facts.name) { $0.connected }
        // R6: registered without a manager id, the device gets this installation's, made at its first start.
        let manager: Rampart_Inventory_V1_ManagerResponse = try await client.call(
            InventoryAPI.getManager,
            Rampart_Inventory_V1_GetManagerRequest())
        let managerId = manager.managerID
        #expect(managerId.hasPrefix("rampart-") && managerId != "rampart-manager", "\(managerId)")
        #expect(device.serial == facts.serial && device.managerID == managerId)
        try await system.waitUntilServing(DeviceAgent.serviceName(deviceId: device.id))
        let service = DeviceAgent.serviceName(deviceId: device.id)

        let described: Rampart_Device_V1_DescribeResponse = try await client.call(
            DeviceAPI.describe, Rampart_Device_V1_DescribeRequest(), service: service)
        #expect(described.facts.id == device.id && described.facts.name == facts.name)
        #expect(described.facts.software.version == "7.4.1" && described.facts.software.patch == 2)
        #expect(described.state == "running" && described.configBytes > 2_000_000)

        let clock = ContinuousClock()
        let started = clock.now
        var request = Rampart_Device_V1_StartExportRequest()
        request.jobID = "it-job"
        request.role = .standalone
        let export: Rampart_Device_V1_StartExportResponse = try await client.call(
            DeviceAPI.startExport, request, service: service, timeout: .seconds(20))
        var archive = Data()
        var chunks = 0
        while true {
            var read = Rampart_Device_V1_ReadExportRequest()
            read.exportID = export.exportID
            read.offset = UInt64(archive.count)
            let chunk: Rampart_Device_V1_ReadExportResponse = try await client.call(
                DeviceAPI.readExport, read, service: service, timeout: .seconds(10))
            #expect(chunk.data.count <= 1 << 20)
            archive.append(chunk.data)
            chunks += 1
            if chunk.eof { break }
        }
        print("export of \(archive.count) bytes in \(chunks) chunks over the bus took \(clock.now - started)")
        #expect(chunks == 3)
        #expect(UInt64(archive.count) == export.size && sha256Hex(archive) == export.sha256)
        let (manifest, files) = try BackupArchive.open(archive)
        #expect(manifest.deviceId == device.id && manifest.managerId == managerId)  // B11
        #expect(manifest.software.patch == 2)  // B5
        #expect(files.keys.contains("pki/https-server.key"))  // B12
        var finish = Rampart_Device_V1_FinishExportRequest()
        finish.exportID = export.exportID
        let _: Rampart_Device_V1_FinishExportResponse = try await client.call(
            DeviceAPI.finishExport, finish, service: service)
        let again = await #expect(throws: RPCError.self) {
            let _: Rampart_Device_V1_FinishExportResponse = try await client.call(
                DeviceAPI.finishExport, finish, service: service)
        }
        #expect(again?.code == .notFound)

        // The registration is in the device's configuration tree (B11).
        let registration = try DeviceFolder.open(folder).registration()
        #expect(registration.deviceId == device.id && registration.managerId == managerId)

        // A graceful stop reports the device disconnected.
        await agent.stop()
        _ = try await Self.waitForDevice(client, facts.name) { !$0.connected }
        #expect(agent.log.contains("stopped serving"))
    }

    @Test(
        "B1, B12: an export of a 256 MiB configuration is served over the bus with the agent's peak resident memory (VmHWM) under 64 MiB"
    )
    func largeExportInBoundedMemory() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        let folder = NSTemporaryDirectory() + "device-agent-it-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let facts = sampleFacts(name: "fw-it-03", serial: "JADIT0003", configSize: 16_384)
        try DeviceFolder.initialize(at: folder, facts: facts)
        // A configuration of 256 MiB: a zero-filled file in the tree, written a mebibyte at a time.
        let padding = 256 << 20
        let path = folder + "/config/policies/padding.bin"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: path))
        let zeros = Data(count: 1 << 20)
        for _ in 0..<(padding / zeros.count) { try handle.write(contentsOf: zeros) }
        try handle.close()
        try system.start("inventory")
        try await system.waitUntilServing("inventory")
        try system.addDeviceKeys([facts.name])
        let agent = try system.start("device-agent", ["run", "--dir", folder, "--register", "--presence-interval-ms", "300"])
        let client = system.client()
        defer { client.close() }
        let device = try await Self.waitForDevice(client, facts.name) { $0.connected }
        let service = DeviceAgent.serviceName(deviceId: device.id)
        try await system.waitUntilServing(service)

        var request = Rampart_Device_V1_StartExportRequest()
        request.jobID = "it-job-large"
        request.role = .standalone
        let export: Rampart_Device_V1_StartExportResponse = try await client.call(
            DeviceAPI.startExport, request, service: service, timeout: .seconds(120))
        #expect(export.size > UInt64(padding))
        // No file in the device folder shows the export (it holds decrypted keys, B12).
        let names = try FileManager.default.contentsOfDirectory(atPath: folder)
        #expect(names.allSatisfy { !$0.hasPrefix(".") }, "\(names)")
        var hash = SHA256()
        var offset: UInt64 = 0
        while true {
            var read = Rampart_Device_V1_ReadExportRequest()
            read.exportID = export.exportID
            read.offset = offset
            let chunk: Rampart_Device_V1_ReadExportResponse = try await client.call(
                DeviceAPI.readExport, read, service: service, timeout: .seconds(10))
            hash.update(data: chunk.data)
            offset += UInt64(chunk.data.count)
            if chunk.eof { break }
        }
        #expect(offset == export.size)
        #expect(hash.finalize().map { String(format: "%02x", $0) }.joined() == export.sha256)
        let peak = try peakResidentBytes(agent.pid)
        print("export of \(offset) bytes: device-agent run peaked at \(peak >> 20) MiB")
        #expect(peak < RestoreCLIProcessTests.peakMemoryBound, "device-agent run peaked at \(peak >> 20) MiB exporting \(offset >> 20) MiB")
        var finish = Rampart_Device_V1_FinishExportRequest()
        finish.exportID = export.exportID
        let _: Rampart_Device_V1_FinishExportResponse = try await client.call(
            DeviceAPI.finishExport, finish, service: service)
        await agent.stop()
    }

    @Test("Device agent: run refuses a device whose name is registered with another serial")
    func serialMismatch() async throws {
        let system = try RunningSystem()
        defer { system.stopInBackground() }
        let folder = NSTemporaryDirectory() + "device-agent-it-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try DeviceFolder.initialize(at: folder, facts: sampleFacts(name: "fw-it-02", serial: "JADIT0002", configSize: 16_384))
        try system.start("inventory")
        try await system.waitUntilServing("inventory")
        let registered = try await system.rampart(
            "devices", "register", "fw-it-02", "--serial", "OTHER0002", "--model", "FPR-3120", "--platform", "physical",
            "--software", "7.4.1", "--management-ip", "10.0.0.12")
        #expect(registered.exitCode == 0, "\(registered)")
        try system.addDeviceKeys(["fw-it-02"])
        let result = try await ChildProcess.run(
            Binaries.path("device-agent"), ["run", "--dir", folder, "--register"], environment: system.environment)
        #expect(result.exitCode != 0)
        #expect(result.stderr.contains("serial"), "\(result)")
    }
}
