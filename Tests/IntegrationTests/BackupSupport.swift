import Foundation
import RampartAPI
import RampartBus
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// A simulated fleet for `device-agent fleet --spec` (docs/device-agent.md).
struct FleetSpec: Codable {
    struct Device: Codable {
        var name: String
        var serial: String
        var model = "FPR-3120"
        var platform = "physical"
        var hypervisor: String?
        var software = "7.4.1"
        var patch = 2
        var networkModules = 1
        var interfaces = ["1GbE-RJ45": 8]
        var managementIp: String
        var failExport = false
        var slowExportMs = 0

        init(name: String, serial: String, model: String, platform: String, hypervisor: String?, managementIp: String,
             failExport: Bool, slowExportMs: Int) {
            (self.name, self.serial, self.model, self.platform, self.hypervisor) = (name, serial, model, platform, hypervisor)
            (self.managementIp, self.failExport, self.slowExportMs) = (managementIp, failExport, slowExportMs)
        }

        /// A device of a spec file such as dev/fleet.json, where everything but the facts is optional.
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            serial = try c.decode(String.self, forKey: .serial)
            model = try c.decode(String.self, forKey: .model)
            platform = try c.decode(String.self, forKey: .platform)
            hypervisor = try c.decodeIfPresent(String.self, forKey: .hypervisor)
            software = try c.decode(String.self, forKey: .software)
            patch = try c.decodeIfPresent(Int.self, forKey: .patch) ?? 0
            networkModules = try c.decodeIfPresent(Int.self, forKey: .networkModules) ?? 0
            interfaces = try c.decodeIfPresent([String: Int].self, forKey: .interfaces) ?? [:]
            managementIp = try c.decode(String.self, forKey: .managementIp)
            failExport = try c.decodeIfPresent(Bool.self, forKey: .failExport) ?? false
            slowExportMs = try c.decodeIfPresent(Int.self, forKey: .slowExportMs) ?? 0
        }
    }

    struct Pair: Codable {
        var name: String
        var primary: String
        var secondary: String
    }

    struct Cluster: Codable {
        var name: String
        var control: String
        var data: [String]
    }

    var configSize = "32KiB"
    var devices: [Device] = []
    var haPairs: [Pair] = []
    var clusters: [Cluster] = []

    private var counter = 0

    private enum CodingKeys: String, CodingKey { case configSize, devices, haPairs, clusters }

    mutating func device(_ name: String, model: String = "FPR-3120", platform: String = "physical", hypervisor: String? = nil,
                         failExport: Bool = false, slowExportMs: Int = 0) {
        counter += 1
        devices.append(
            Device(
                name: name, serial: "SN\(String(format: "%05d", counter))", model: model, platform: platform,
                hypervisor: hypervisor, managementIp: "10.1.\(counter / 250).\(counter % 250 + 1)", failExport: failExport,
                slowExportMs: slowExportMs))
    }

    mutating func pair(_ name: String) {
        device("\(name)-a", model: "FPR-4215")
        device("\(name)-b", model: "FPR-4215")
        haPairs.append(Pair(name: name, primary: "\(name)-a", secondary: "\(name)-b"))
    }

    mutating func cluster(_ name: String, failing: Set<String> = []) {
        for node in ["n1", "n2", "n3"] {
            device("\(name)-\(node)", model: "FPR-9300", platform: "native-instance", failExport: failing.contains(node))
        }
        clusters.append(Cluster(name: name, control: "\(name)-n1", data: ["\(name)-n2", "\(name)-n3"]))
    }
}

/// A running system with storage, `workers` backup workers and the fleet of `spec`.
struct BackupSystem {
    let system: RunningSystem
    let storageDir: String
    var workers: [ChildProcess] = []
    /// The `device-agent fleet` process serving every simulated device.
    var fleet: ChildProcess?
    /// The `storage` process.
    var storage: ChildProcess?

    /// The file link-signer reads its clock offset from (seconds; `setClockOffset`).
    var clockOffsetFile: String { system.logDirectory + "/clock-offset" }

    /// Starts it all; `prepareStorage(dir)` runs on the (created) storage folder before storage starts
    /// (e.g. to mount a small filesystem there).
    static func start(
        _ spec: FleetSpec, workers count: Int = 1, leaseSeconds: Int = 15, links: Bool = false, followLiveness: Bool = true,
        heartbeatMs: Int = 500, prepareStorage: (String) throws -> Void = { _ in }
    ) async throws -> BackupSystem {
        let system = try RunningSystem(heartbeatMs: heartbeatMs)
        let storageDir = system.logDirectory + "/storage"
        try FileManager.default.createDirectory(atPath: storageDir, withIntermediateDirectories: true)
        try prepareStorage(storageDir)
        var result = BackupSystem(system: system, storageDir: storageDir)
        try system.start("inventory", followLiveness ? [] : ["--presence-poll-ms", "0"])
        result.storage = try system.start("storage", ["--dir", storageDir])
        if links {
            try system.start(
                "link-signer",
                ["--master-key", system.logDirectory + "/link-signer/master.key", "--clock-offset-file",
                 result.clockOffsetFile])
        }
        for index in 0..<count {
            result.workers.append(
                try system.start(
                    "backup-worker",
                    ["--instance-id", "worker-\(index + 1)", "--lease-seconds", "\(leaseSeconds)", "--retry-base-seconds", "0",
                     "--schedule-interval-ms", "200", "--schedule-target-check-seconds", "1", "--objective-check-seconds", "1",
                     "--database", connectionString(system.database, applicationName: "worker-\(index + 1)")]))
        }
        let specPath = system.logDirectory + "/fleet.json"
        let encoder = JSONEncoder()
        try encoder.encode(spec).write(to: URL(fileURLWithPath: specPath))
        try system.addDeviceKeys(spec.devices.map(\.name))
        result.fleet = try system.start(
            "device-agent", ["fleet", "--dir", system.logDirectory + "/fleet", "--spec", specPath, "--register"])
        try await system.waitUntilServing(InventoryAPI.serviceName)
        try await system.waitUntilServing("storage")
        if links { try await system.waitUntilServing("link-signer") }
        try await system.waitUntilServing(BackupAPI.serviceName, instances: count)
        try await result.waitForFleet(spec)
        return result
    }

    /// Waits until every device of the fleet serves its bus service and the pairs and clusters exist.
    func waitForFleet(_ spec: FleetSpec) async throws {
        let client = system.client()
        defer { client.close() }
        for _ in 0..<400 {
            let devices: Rampart_Inventory_V1_ListDevicesResponse? = try? await client.call(
                InventoryAPI.listDevices,
                Rampart_Inventory_V1_ListDevicesRequest(), timeout: .seconds(2))
            let clusters: Rampart_Inventory_V1_ListClustersResponse? = try? await client.call(
                InventoryAPI.listClusters,
                Rampart_Inventory_V1_ListClustersRequest(), timeout: .seconds(2))
            let pairs: Rampart_Inventory_V1_ListHaPairsResponse? = try? await client.call(
                InventoryAPI.listHaPairs,
                Rampart_Inventory_V1_ListHaPairsRequest(), timeout: .seconds(2))
            if let devices, let clusters, let pairs, devices.devices.filter(\.connected).count == spec.devices.count,
                clusters.clusters.count == spec.clusters.count, pairs.pairs.count == spec.haPairs.count
            {
                for device in devices.devices { try await system.waitUntilServing("device/\(device.id)") }
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RunningSystem.TimeoutError(description: "the fleet never came up\n\(system.logs)")
    }

    /// Moves link-signer's clock `seconds` ahead of the system clock (read at every signing and check).
    func setClockOffset(_ seconds: Double) throws {
        try Data("\(seconds)\n".utf8).write(to: URL(fileURLWithPath: clockOffsetFile), options: .atomic)
    }

    /// `rampart backup start TARGETS --wait --output json`: the finished job and the CLI's exit code.
    func backUp(_ targets: String...) async throws -> (Rampart_Backup_V1_Job, Int32) {
        let result = try await system.rampart(["backup", "start"] + targets + ["--wait", "--output", "json", "--timeout", "60"])
        guard let job = try? OperatorJSON.decode(Rampart_Backup_V1_Job.self, from: result.stdout) else {
            throw RunningSystem.TimeoutError(description: "no job from the CLI: \(result)\n\(system.logs)")
        }
        return (job, result.exitCode)
    }

    func backups(job: String) async throws -> [Rampart_Backup_V1_Backup] {
        let result = try await system.rampart("backups", "list", "--job", job, "--output", "json")
        #expect(result.exitCode == 0, "\(result)")
        return try OperatorJSON.decode(Rampart_Backup_V1_ListBackupsResponse.self, from: result.stdout).backups
    }

    /// `device-agent change-config` on `device` of the fleet (with no arguments: an access rule and the
    /// location change): its next backup holds a different configuration (P17).
    func changeConfig(_ device: String, _ arguments: String...) async throws {
        let result = try await ChildProcess.run(
            Binaries.path("device-agent"), ["change-config", "--dir", system.logDirectory + "/fleet", device] + arguments)
        #expect(result.exitCode == 0, "\(result)")
    }

    /// Damages `backup`'s stored object: one bit flipped in its middle, as a failing disk would.
    func flipBit(of backup: Rampart_Backup_V1_Backup) throws {
        let objects = try FileManager.default.subpathsOfDirectory(atPath: storageDir + "/objects")
            .filter { $0.contains(backup.objectID) }
        let path = storageDir + "/objects/" + (try #require(objects.first, "the object of \(backup.id)"))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: path))
    }

    /// Downloads a backup through the CLI and returns its bytes.
    func download(_ backup: Rampart_Backup_V1_Backup) async throws -> Data {
        // By id: two backups taken within one second share a file name.
        let path = system.logDirectory + "/\(backup.id)-\(backup.fileName)"
        let result = try await system.rampart("backups", "download", backup.id, "-o", path)
        #expect(result.exitCode == 0, "\(result)")
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }
}

/// `database` with libpq's `application_name` set to `name` (keyword/value or URI form): each connection of a
/// process started with it shows `name` in `pg_stat_activity`, so a test can tell which worker runs what.
func connectionString(_ database: String, applicationName name: String) -> String {
    if database.hasPrefix("postgres://") || database.hasPrefix("postgresql://"), var components = URLComponents(string: database) {
        components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "application_name", value: name)]
        if let url = components.string { return url }
    }
    return database.trimmingCharacters(in: .whitespaces) + " application_name=\(name)"
}

/// Runs `body` with a backup system, always stopping it; logs are attached on failure. `followLiveness:
/// false` starts inventory with `--presence-poll-ms 0`, for tests that play a device's part by hand (a
/// presence report with no agent on the bus, which the bus's liveness would undo a moment later).
func withBackupSystem(
    _ spec: FleetSpec, workers: Int = 1, leaseSeconds: Int = 15, links: Bool = false, followLiveness: Bool = true,
    heartbeatMs: Int = 500, _ body: (BackupSystem) async throws -> Void
) async throws {
    let system = try await BackupSystem.start(
        spec, workers: workers, leaseSeconds: leaseSeconds, links: links, followLiveness: followLiveness,
        heartbeatMs: heartbeatMs)
    do {
        try await body(system)
    } catch {
        Issue.record("logs:\n\(system.system.logs)")
        await system.system.stop()
        throw error
    }
    await system.system.stop()
}
