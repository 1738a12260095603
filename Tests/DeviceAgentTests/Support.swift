import DeviceAgentCore
import Foundation
import RampartArchive
import RampartProto

/// A fresh temporary folder path (not created).
func temporaryPath(_ label: String = "dev") -> String {
    NSTemporaryDirectory() + "device-agent-test-\(label)-\(UUID().uuidString.prefix(8))"
}

/// Facts of a realistic physical appliance.
func sampleFacts(name: String = "fw-edge-01", serial: String = "JAD2411A0B1", configSize: Int = 64 * 1024, seed: UInt64 = 42)
    -> DeviceProfile
{
    DeviceProfile(
        name: name, serial: serial, model: "FPR-3120", platform: "physical", software: "7.4.1", patch: 2, networkModules: 1,
        interfaces: [.init(type: "1GbE-RJ45", count: 8), .init(type: "10GbE-SFP+", count: 4)], managementIp: "10.0.0.11",
        configSize: configSize, seed: seed)
}

/// Every regular file below `root`, relative path → contents.
func tree(_ root: String) -> [String: Data] {
    var files: [String: Data] = [:]
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let relative = enumerator?.nextObject() as? String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue {
            files[relative] = FileManager.default.contents(atPath: root + "/" + relative)
        }
    }
    return files
}

/// A StartExport request for a standalone device.
func exportRequest(job: String = "job-1", role: Rampart_Inventory_V1_Role = .standalone, createdMs: Int64 = 1_738_324_800_000)
    -> Rampart_Device_V1_StartExportRequest
{
    var request = Rampart_Device_V1_StartExportRequest()
    request.jobID = job
    request.role = role
    request.createdUnixMs = createdMs
    return request
}

/// Reads a whole export through ReadExport, `chunk` bytes at a time; returns the data and the chunk sizes.
func readAll(_ agent: DeviceAgent, _ id: String, chunk: UInt32 = 0) async throws -> (Data, [Int]) {
    var data = Data()
    var sizes: [Int] = []
    while true {
        var request = Rampart_Device_V1_ReadExportRequest()
        request.exportID = id
        request.offset = UInt64(data.count)
        request.length = chunk
        let response = try await agent.readExport(request)
        data.append(response.data)
        sizes.append(response.data.count)
        if response.eof { return (data, sizes) }
    }
}

/// A clock tests move by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64 = 1_000_000

    var now: Int64 {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func advance(_ ms: Int64) {
        lock.lock()
        value += ms
        lock.unlock()
    }
}
