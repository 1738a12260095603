import DeviceAgentCore
import Foundation
import Logging
import RampartAPI
import RampartArchive
import RampartBus
import RampartProto
import RampartRPC
import Testing

@Suite("Device agent: exports, StartExport, ReadExport, FinishExport")
struct ExportTests {
    static func agent(
        configSize: Int = 64 * 1024, options: DeviceAgent.Options = .init(), clock: ManualClock? = nil
    ) throws -> (DeviceAgent, String) {
        let path = temporaryPath()
        let folder = try DeviceFolder.initialize(at: path, facts: sampleFacts(configSize: configSize))
        try folder.writeRegistration(managerId: "rampart-manager", deviceId: "0b6e2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d")
        let agent: DeviceAgent
        if let clock {
            agent = DeviceAgent(
                folder: folder, deviceId: "0b6e2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d", managerId: "rampart-manager",
                options: options, now: { clock.now })
        } else {
            agent = DeviceAgent(
                folder: folder, deviceId: "0b6e2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d", managerId: "rampart-manager",
                options: options)
        }
        return (agent, path)
    }

    @Test("Archives, B1, B5, B11, B12: the export is a backup with manifest first, facts, ids and decrypted keys")
    func exportContents() async throws {
        let (agent, path) = try Self.agent()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let started = try await agent.startExport(exportRequest())
        let (archive, _) = try await readAll(agent, started.exportID)
        #expect(UInt64(archive.count) == started.size)
        #expect(sha256Hex(archive) == started.sha256)
        #expect(try TarReader(data: archive).members().first?.path == "manifest.json")
        let contents = try BackupArchive.read(archive)  // verifies every member's SHA-256 and size
        #expect(contents.manifestJSON == started.manifestJson)
        let manifest = contents.manifest
        #expect(manifest.software == .init(version: "7.4.1", patch: 2))  // B5
        #expect(manifest.deviceId == "0b6e2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d")  // B11
        #expect(manifest.managerId == "rampart-manager")
        #expect(manifest.managementIp == "10.0.0.11")
        #expect(manifest.serial == "JAD2411A0B1")
        #expect(manifest.model == "FPR-3120" && manifest.networkModules == 1 && manifest.platform == "physical")
        #expect(manifest.interfaces.map(\.count) == [8, 4])
        #expect(manifest.role == .standalone && manifest.jobId == "job-1")
        #expect(manifest.createdAt == "2025-01-31T12:00:00Z")
        #expect(manifest.files.count == contents.files.count)
        // B11: what the device needs to reconnect to its manager is in the tree.
        let registration = String(decoding: contents["manager-registration.json"] ?? Data(), as: UTF8.self)
        #expect(registration.contains("0b6e2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d") && registration.contains("rampart-manager"))
        // B12: private keys decrypted, no encrypted copies.
        #expect(contents.files.filter { $0.path.hasSuffix(".key.enc") }.isEmpty)
        let key = String(decoding: contents["pki/https-server.key"] ?? Data(), as: UTF8.self)
        #expect(key.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        // B1: configuration only, nothing from outside config/.
        #expect(contents.files.allSatisfy { !$0.path.hasPrefix("backups") && $0.path != "facts.json" && $0.path != "device.key" })
        for file in contents.files {
            #expect(manifest.files.first { $0.path == file.path }?.sha256 == sha256Hex(file.contents))
        }
    }

    @Test("Archives: exports of the same device with the same request are identical")
    func deterministicExport() async throws {
        let (agent, path) = try Self.agent()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let one = try await agent.startExport(exportRequest())
        let two = try await agent.startExport(exportRequest())
        #expect(one.sha256 == two.sha256 && one.exportID != two.exportID)
    }

    @Test("Bus: ReadExport returns chunks of at most 1 MiB by offset; the chunks reassemble the archive")
    func chunks() async throws {
        let (agent, path) = try Self.agent(configSize: 3 << 20)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let started = try await agent.startExport(exportRequest())
        #expect(started.size > 3 << 20)
        let (whole, sizes) = try await readAll(agent, started.exportID)
        #expect(sizes.dropLast().allSatisfy { $0 == 1 << 20 })
        #expect(sizes.count == 4)
        #expect(sha256Hex(whole) == started.sha256)
        let (small, smallSizes) = try await readAll(agent, started.exportID, chunk: 300_000)
        #expect(small == whole)
        #expect(smallSizes.max() == 300_000)
        // Reading at the end gives nothing and eof; past it is out of range.
        var request = Rampart_Device_V1_ReadExportRequest()
        request.exportID = started.exportID
        request.offset = started.size
        let end = try await agent.readExport(request)
        #expect(end.data.isEmpty && end.eof)
        request.offset = started.size + 1
        let past = await #expect(throws: RPCError.self) { try await agent.readExport(request) }
        #expect(past?.code == .outOfRange)
        request.offset = 0
        request.length = (1 << 20) + 1
        let tooLong = await #expect(throws: RPCError.self) { try await agent.readExport(request) }
        #expect(tooLong?.code == .invalidArgument)
    }

    @Test("Device agent: unknown, finished and empty export ids are refused with NOT_FOUND / INVALID_ARGUMENT")
    func unknownExports() async throws {
        let (agent, path) = try Self.agent()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var read = Rampart_Device_V1_ReadExportRequest()
        read.exportID = "nope"
        #expect((await #expect(throws: RPCError.self) { try await agent.readExport(read) })?.code == .notFound)
        read.exportID = ""
        #expect((await #expect(throws: RPCError.self) { try await agent.readExport(read) })?.code == .invalidArgument)
        let started = try await agent.startExport(exportRequest())
        var finish = Rampart_Device_V1_FinishExportRequest()
        finish.exportID = started.exportID
        _ = try agent.finishExport(finish)
        #expect((#expect(throws: RPCError.self) { try agent.finishExport(finish) })?.code == .notFound)
        read.exportID = started.exportID
        #expect((await #expect(throws: RPCError.self) { try await agent.readExport(read) })?.code == .notFound)
    }

    @Test("Device agent: at most 4 exports at once (RESOURCE_EXHAUSTED beyond); unfinished ones expire after 10 minutes")
    func limits() async throws {
        let clock = ManualClock()
        let (agent, path) = try Self.agent(clock: clock)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var ids: [String] = []
        for job in 0..<4 { ids.append(try await agent.startExport(exportRequest(job: "j\(job)")).exportID) }
        let full = await #expect(throws: RPCError.self) { try await agent.startExport(exportRequest()) }
        #expect(full?.code == .resourceExhausted)
        var finish = Rampart_Device_V1_FinishExportRequest()
        finish.exportID = ids[0]
        _ = try agent.finishExport(finish)
        ids[0] = try await agent.startExport(exportRequest()).exportID
        clock.advance(599_999)
        var read = Rampart_Device_V1_ReadExportRequest()
        read.exportID = ids[1]
        _ = try await agent.readExport(read)
        clock.advance(1)
        #expect((await #expect(throws: RPCError.self) { try await agent.readExport(read) })?.code == .notFound)
        _ = try await agent.startExport(exportRequest())  // the expired ones freed their slots
        agent.exports.prune()
        #expect(agent.exports.count == 1)
    }

    /// A StartExport of attempt `token` of task `task`.
    private func attemptRequest(_ task: String, token: UInt64, leaseSeconds: UInt32 = 15) -> Rampart_Device_V1_StartExportRequest {
        var request = exportRequest(job: "job-\(task)")
        request.taskID = task
        request.attemptToken = token
        request.leaseSeconds = leaseSeconds
        return request
    }

    @Test("Interrupted backups are delayed, not lost: five attempts of one task in a row hold one slot; a stale attempt is refused")
    func attemptsReplaceTheirPredecessor() async throws {
        let (agent, path) = try Self.agent()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Five attempts that never finished (cancelled, their worker killed): each replaces the one before.
        var last = ""
        for token in 1...5 { last = try await agent.startExport(attemptRequest("t-1", token: UInt64(token))).exportID }
        #expect(agent.exports.count == 1)
        var read = Rampart_Device_V1_ReadExportRequest()
        read.exportID = last
        _ = try await agent.readExport(read)
        // Three other tasks still find a slot each; the fifth task is told the device is busy (retryable).
        for task in ["t-2", "t-3", "t-4"] { _ = try await agent.startExport(attemptRequest(task, token: 1)) }
        let busy = await #expect(throws: RPCError.self) { try await agent.startExport(attemptRequest("t-5", token: 1)) }
        #expect(busy?.code == .resourceExhausted && busy?.message.contains("busy") == true, "\(String(describing: busy))")
        // An earlier attempt coming back late (a worker that lost its lease) never takes the export away.
        let stale = await #expect(throws: RPCError.self) { try await agent.startExport(attemptRequest("t-1", token: 3)) }
        #expect(stale?.code == .failedPrecondition, "\(String(describing: stale))")
        _ = try await agent.readExport(read)
    }

    @Test("Interrupted backups are delayed, not lost: an export unread for its attempt's lease is released")
    func unreadExportsAreReleased() async throws {
        let clock = ManualClock()
        let (agent, path) = try Self.agent(clock: clock)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let held = try await agent.startExport(attemptRequest("t-a", token: 1, leaseSeconds: 15)).exportID
        for task in ["t-b", "t-c", "t-d"] { _ = try await agent.startExport(attemptRequest(task, token: 1, leaseSeconds: 15)) }
        // `t-a` is read now and then: kept. The other three stop reading (their workers died).
        var read = Rampart_Device_V1_ReadExportRequest()
        read.exportID = held
        clock.advance(10_000)
        _ = try await agent.readExport(read)
        clock.advance(10_000)
        _ = try await agent.readExport(read)
        // 20 s without a read for t-b…t-d: released, so another task gets a slot.
        _ = try await agent.startExport(attemptRequest("t-e", token: 1))
        #expect(agent.exports.count == 2)
        _ = try await agent.readExport(read)
    }

    @Test("Device agent: --fail-export makes StartExport fail with INTERNAL 'simulated export failure'")
    func failExport() async throws {
        let (agent, path) = try Self.agent(options: .init(failExport: true))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = await #expect(throws: RPCError.self) { try await agent.startExport(exportRequest()) }
        #expect(error?.code == .internal)
        #expect(error?.message == "simulated export failure")
        #expect(agent.exports.count == 0)
    }

    @Test("Device agent: StartExport validates role and membership ids", arguments: [
        (Rampart_Inventory_V1_Role.unspecified, "", ""), (.haPrimary, "", ""), (.clusterData, "pair", ""),
        (.standalone, "pair", ""), (.clusterControl, "", ""),
    ])
    func invalidRequests(role: Rampart_Inventory_V1_Role, pair: String, cluster: String) async throws {
        let (agent, path) = try Self.agent()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var request = exportRequest(role: role)
        request.haPairID = pair
        request.clusterID = cluster
        let error = await #expect(throws: RPCError.self) { try await agent.startExport(request) }
        #expect(error?.code == .invalidArgument)
        request = exportRequest(role: .haSecondary)
        request.haPairID = "pair-1"
        let manifest = try BackupManifest.decode(try await agent.startExport(request).manifestJson)
        #expect(manifest.role == .haSecondary && manifest.haPairId == "pair-1")
    }

    @Test("Device agent: the agent never crashes on input: garbage payloads and unknown methods get status codes")
    func garbage() async throws {
        let (agent, path) = try Self.agent()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let router = agent.router()
        var header = Rampart_Bus_V1_RequestHeader()
        header.requestID = 1
        for method: any RPCMethodDescription in [DeviceAPI.startExport, DeviceAPI.readExport, DeviceAPI.finishExport] {
            header.method = method.name
            let (reply, _) = await router.handle(
                header: header, payload: Data([0xff, 0xff, 0xff, 0x01]), instanceId: "t", logger: Logger(label: "t"))
            #expect(reply.status == .invalidArgument, "\(method.name)")
        }
        header.method = DeviceAPI.describe.name.replacingOccurrences(of: "/Describe", with: "/Explode")  // no such method
        let (reply, _) = await router.handle(header: header, payload: Data(), instanceId: "t", logger: Logger(label: "t"))
        #expect(reply.status == .unimplemented)
        header.method = DeviceAPI.describe.name
        let (ok, payload) = await router.handle(header: header, payload: Data(), instanceId: "t", logger: Logger(label: "t"))
        #expect(ok.status == .ok)
        let described = try Rampart_Device_V1_DescribeResponse(serializedBytes: payload)
        #expect(described.facts.name == "fw-edge-01" && described.facts.software.patch == 2)
        #expect(described.facts.id == "0b6e2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d" && described.state == "running")
        #expect(described.configBytes > 60_000)
    }
}

@Suite("Device agent: fleet specs")
struct FleetSpecTests {
    @Test("Device agent: a generated fleet of 500 devices has unique names, serials and IPs and valid facts")
    func generate500() throws {
        let spec = FleetSpec.generate(standalone: 380, haPairs: 30, clusters: 10, clusterNodes: 3, kvm: 30)
        #expect(spec.devices.count == 380 + 60 + 30 + 30)
        try spec.validate()
        #expect(Set(spec.devices.map(\.managementIp)).count == spec.devices.count)
        #expect(spec.haPairs?.count == 30 && spec.clusters?.count == 10)
        #expect(spec.devices.filter { $0.hypervisor == "kvm" }.count == 30)
        let decoded = try JSONDecoder().decode(FleetSpec.self, from: try spec.encoded())
        #expect(decoded == spec)
        #expect(FleetSpec.generate(standalone: 3, haPairs: 1, clusters: 1) == FleetSpec.generate(standalone: 3, haPairs: 1, clusters: 1))
    }

    @Test("Device agent: the documented spec format is read, interfaces as a map")
    func documentedFormat() throws {
        let json = """
            {"configSize": "128KiB",
             "devices": [{"name": "fw-a", "serial": "S1", "model": "FPR-3120", "platform": "physical", "software": "7.4.1",
                          "patch": 1, "managementIp": "10.0.0.1", "interfaces": {"1GbE-RJ45": 8}, "networkModules": 1,
                          "failExport": true, "slowExportMs": 5},
                         {"name": "fw-b", "serial": "S2", "model": "FPR-3120", "platform": "physical", "software": "7.4.1",
                          "patch": 1, "managementIp": "10.0.0.2"}],
             "haPairs": [{"name": "ha", "primary": "fw-a", "secondary": "fw-b"}], "clusters": []}
            """
        let spec = try JSONDecoder().decode(FleetSpec.self, from: Data(json.utf8))
        try spec.validate()
        #expect(try spec.configBytes() == 128 * 1024)
        #expect(spec.devices[0].facts(configSize: 1024).interfaces == [.init(type: "1GbE-RJ45", count: 8)])
        #expect(spec.devices[0].failExport == true)
    }

    @Test("Device agent: specs with duplicates or unknown members are refused")
    func invalidSpecs() throws {
        let device = FleetSpec.Device(
            name: "fw-a", serial: "S1", model: "M", platform: "physical", software: "7.4.1", managementIp: "10.0.0.1")
        var twice = device
        twice.serial = "S2"
        #expect(throws: AgentError.self) { try FleetSpec(devices: [device, twice]).validate() }
        #expect(throws: AgentError.self) {
            try FleetSpec(devices: [device], haPairs: [.init(name: "ha", primary: "fw-a", secondary: "ghost")]).validate()
        }
        #expect(throws: AgentError.self) { try FleetSpec(configSize: "lots", devices: [device]).validate() }
    }

    @Test("Device agent: fleet folders are prepared once and re-opened on later runs")
    func prepare() async throws {
        let path = temporaryPath("fleet")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var spec = FleetSpec.generate(standalone: 3, haPairs: 1, clusters: 0)
        spec.configSize = "16KiB"
        let folders = try await FleetRunner.prepare(directory: path, spec: spec)
        #expect(folders.map(\.facts.name) == spec.devices.map(\.name))
        let key = FileManager.default.contents(atPath: path + "/fw-std-001/device.key")
        let again = try await FleetRunner.prepare(directory: path, spec: spec)
        #expect(again.count == 5)
        #expect(FileManager.default.contents(atPath: path + "/fw-std-001/device.key") == key)
        spec.devices[0].serial = "OTHER1"
        await #expect(throws: AgentError.self) { try await FleetRunner.prepare(directory: path, spec: spec) }
    }
}
