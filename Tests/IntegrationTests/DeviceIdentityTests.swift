import Foundation
import Logging
import RampartAPI
import RampartArchive
import RampartBus
import RampartJSON
import RampartProto
import RampartAudit
import RampartLinks
import RampartRPC
import RampartTesting
import SwiftProtobuf
import Testing

/// P8 over real processes: a device's service is served by the appliance that is that device — the
/// key made for it, the serial inventory holds for it — and by one instance at a time
/// (docs/security.md, "One key, one device").
@Suite("One key, one device: who may serve device/<id> (P8, R12)", .serialized)
struct DeviceIdentityTests {
    static let quiet: Logger = {
        var logger = Logger(label: "rampart.test.impostor")
        logger.logLevel = .critical
        return logger
    }()

    /// Registers `service` on the system's bus with the key of `keyName` and `serial`, answering every
    /// request with INTERNAL, until the returned task is cancelled.
    static func impostor(
        _ system: RunningSystem, service: String, as keyName: String, serial: String, instanceId: String
    ) -> Task<Void, any Error> {
        var configuration = ServiceHost.Configuration(
            service: service, brokerEndpoint: system.busEndpoint, security: system.security(as: keyName),
            instanceId: instanceId)
        configuration.serial = serial
        configuration.heartbeatIntervalMs = Int64(system.heartbeatMs)
        // No methods: every request it would take gets UNIMPLEMENTED, and fails the backup that sent it.
        let router = ServiceRouter(serviceName: "impostor", policy: AccessPolicy([:]))
        let host = ServiceHost(configuration: configuration, router: router, logger: quiet)
        return Task { try await host.run() }
    }

    /// The instance ids serving `service`, as the broker lists them.
    static func instances(_ system: RunningSystem, _ service: String) async throws -> [String] {
        let client = system.client()
        defer { client.close() }
        var request = Rampart_Bus_V1_BrokerStatusRequest()
        request.servicePrefix = service
        let status: Rampart_Bus_V1_BrokerStatusResponse = try await client.call(
            BrokerAPI.status, request, idempotent: true)
        return status.services.first { $0.name == service }?.instances ?? []
    }

    /// Every `inventory.device.identity-conflict` event in the journal.
    static func conflictEvents(_ system: RunningSystem) async throws -> [Rampart_Bus_V1_Event] {
        let client = system.client()
        defer { client.close() }
        var replay = Rampart_Bus_V1_ReplayRequest()
        replay.topicPrefix = "inventory.device.identity-conflict"
        replay.limit = 1000
        let events: Rampart_Bus_V1_ReplayResponse = try await client.call(
            JournalAPI.replay, replay, idempotent: true)
        return events.events
    }

    static func device(_ system: RunningSystem, _ name: String) async throws -> Rampart_Inventory_V1_Device {
        let shown = try await system.rampart("devices", "show", name, "--output", "json")
        return try OperatorJSON.decode(Rampart_Inventory_V1_Device.self, from: shown.stdout)
    }

    @Test("P8: another device's key, an unknown device id and a viewer's key are refused as device/<id>, audited; the real device keeps every backup")
    func impostorsRefused() async throws {
        var spec = FleetSpec()
        spec.device("id-a")
        spec.device("id-b")
        try await withBackupSystem(spec) { backup in
            let system = backup.system
            let b = try await Self.device(system, "id-b")
            let serviceB = "device/\(b.id)"

            // id-a's key, posing as id-b with id-b's serial.
            let posing = Self.impostor(system, service: serviceB, as: "id-a", serial: b.serial, instanceId: "impostor-a")
            defer { posing.cancel() }
            // id-a's key, as a device inventory never had.
            let unknownId = UUID().uuidString.lowercased()
            let unknown = Self.impostor(
                system, service: "device/\(unknownId)", as: "id-a", serial: "SN99999", instanceId: "impostor-unknown")
            defer { unknown.cancel() }
            // A viewer's key serves nothing.
            let viewer = Self.impostor(system, service: serviceB, as: "viewer", serial: b.serial, instanceId: "impostor-viewer")
            defer { viewer.cancel() }

            try await eventually("the broker refuses all three", timeout: .seconds(30)) {
                let log = system.bus.log
                let seen = log.contains("may serve only its own device") && log.contains("no device with id \(unknownId)")
                    && log.contains("role 'viewer' may not serve services")
                return (seen ? () : nil, String(log.suffix(3000)))
            }
            #expect(try await Self.instances(system, serviceB) == ["device-agent-id-b"])
            #expect(try await Self.instances(system, "device/\(unknownId)").isEmpty)

            // Every backup of id-b reaches the real device (the impostor would answer UNIMPLEMENTED).
            for round in 1...3 {
                let (job, code) = try await backup.backUp("id-b")
                #expect(code == 0 && job.state == .succeeded, "round \(round): \(job)")
            }

            var refused: [Rampart_Audit_V1_AuditEntry] = []
            try await eventually("the refusals are in the audit log") {
                refused = try await SecurityTests.audit(system, "--refused", "--caller", "id-a")
                let methods = Set(refused.map(\.method))
                let done = methods.contains("serve \(serviceB)") && methods.contains("serve device/\(unknownId)")
                return (done ? () : nil, "\(refused.map(\.method))")
            }
            #expect(refused.allSatisfy { $0.service == "bus" }, "\(refused)")

            // id-b shows the conflict, with its event: once, though the impostor asked again and again.
            let shownB = try await Self.device(system, "id-b")
            #expect(shownB.identityConflict.contains("the key of device 'id-a'") && shownB.identityConflictUnixMs > 0, "\(shownB)")
            #expect(try await Self.device(system, "id-a").identityConflictUnixMs == 0)
            let table = try await system.rampart("devices", "show", "id-b")
            #expect(table.stdout.contains("identity conflict"), "\(table)")
            let conflicts = try await eventually("the conflict's event is in the journal") {
                let events = try await Self.conflictEvents(system)
                return (events.isEmpty ? nil : events, "none")
            }
            #expect(conflicts.count == 1 && conflicts.first?.attributes["key"] == "id-a", "\(conflicts)")
        }
    }

    @Test("P8, R12: the original frozen, restored onto a replacement, thawed: the old box is refused, the replacement serves and backs up as itself")
    func oldBoxComesBack() async throws {
        var spec = FleetSpec()
        spec.device("idc-1")
        try await withBackupSystem(spec) { backup in
            let system = backup.system
            let (job, code) = try await backup.backUp("idc-1")
            #expect(code == 0, "\(job)")
            let taken = try #require(try await backup.backups(job: job.id).first)
            let archive = try await backup.download(taken)
            let original = try await Self.device(system, "idc-1")

            // The appliance hangs (no goodbye); it is seen disconnected, so its RMA may go on (R12).
            try await RestoreCoordinatorProcessTests.power(backup, "idc-1", "frozen")
            try await RestoreCoordinatorProcessTests.waitForPresence(backup, "idc-1", connected: false)
            try system.start("restore-coordinator", ["--lease-seconds", "30"])
            try await system.waitUntilServing(RestoreAPI.serviceName)

            let dir = try await RestoreTests.replacement(backup, name: "rma-idc", serial: "RMAID0001", model: "FPR-3120")
            try archive.write(to: URL(fileURLWithPath: dir + "/backups/" + taken.fileName))
            let cli = try RestoreTests.cli(backup, dir, replacing: "idc-1")
            defer { cli.send("exit") }
            try await cli.waitForOutput("> ")
            cli.send("restore remote-manager-backup backup \(taken.fileName)")
            try await cli.waitForOutput("restore: complete", timeout: .seconds(90))
            try await system.waitUntilServing("device/\(original.id)")
            #expect(try await Self.device(system, "idc-1").serial == "RMAID0001")

            // The old box wakes up and asks to serve its old identity again: refused, by its serial.
            try await RestoreCoordinatorProcessTests.power(backup, "idc-1", "on")
            try await eventually("the thawed original is refused", timeout: .seconds(60)) {
                let log = system.bus.log
                return (log.contains("this box has serial \(original.serial)") ? () : nil, String(log.suffix(3000)))
            }
            #expect(try await Self.instances(system, "device/\(original.id)").count == 1)
            let conflict = try await eventually("the conflict is on the device") {
                let shown = try await Self.device(system, "idc-1")
                return (shown.identityConflict.isEmpty ? nil : shown.identityConflict, "\(shown)")
            }
            #expect(conflict.contains("this box has serial \(original.serial)"), "\(conflict)")
            let events = try await eventually("the conflict's event is in the journal") {
                let events = try await Self.conflictEvents(system)
                return (events.isEmpty ? nil : events, "none")
            }
            #expect(events.map { $0.attributes["serial"] } == [original.serial], "\(events)")

            // Every backup reaches the replacement, whose serial the archive carries; the same three times.
            for round in 1...3 {
                let (after, afterCode) = try await backup.backUp("idc-1")
                #expect(afterCode == 0 && after.state == .succeeded, "round \(round): \(after)")
                let stored = try #require(try await backup.backups(job: after.id).first)
                let manifest = try BackupArchive.read(try await backup.download(stored)).manifest
                #expect(manifest.serial == "RMAID0001", "round \(round): backed up the old box")
            }
            #expect(try await Self.device(system, "idc-1").connected)

            // The old box shut down properly (SIGTERM to its fleet): it never spoke for the device, so
            // it does not say the device is gone; the replacement still shows connected.
            #expect(await backup.fleet?.stop(timeout: 20) == true, "the fleet stops within its drain time")
            #expect(try await Self.device(system, "idc-1").connected, "the refused box's goodbye must not count")
        }
    }

    @Test("P7, P8: a device key reads nothing of the fleet: every method not its own, of every service, and the bus's status, answer PERMISSION_DENIED")
    func deviceKeyReadsNothing() async throws {
        var spec = FleetSpec()
        spec.device("ro-1")
        spec.device("ro-2")
        try await withBackupSystem(spec, links: true) { backup in
            let system = backup.system
            try system.start("restore-coordinator", ["--lease-seconds", "30"])
            try await system.waitUntilServing(RestoreAPI.serviceName)
            let other = try await Self.device(system, "ro-2")

            func notForDevices(_ policy: AccessPolicy) -> [String] {
                policy.methods.filter { !$0.value.roles.contains(.device) }.map(\.key).sorted()
            }
            let walk: [(service: String, methods: [String])] = [
                (BusProtocol.brokerService, [BrokerAPI.status.name]),
                (BusProtocol.journalService, [JournalAPI.replay.name, JournalAPI.info.name]),
                (InventoryAPI.serviceName, notForDevices(InventoryAPI.policy)),
                (BackupAPI.serviceName, notForDevices(BackupAPI.policy)),
                (StorageAPI.serviceName, StorageAPI.methods.map(\.name)),
                (LinksAPI.serviceName, [
                    LinksAPI.exportBackupLinks.name, LinksAPI.verifyLink.name, LinksAPI.listKeys.name,
                    LinksAPI.rotateKey.name, LinksAPI.listExports.name,
                ]),
                (RestoreAPI.serviceName, [
                    RestoreAPI.releaseLease.name, RestoreAPI.getLease.name, RestoreAPI.listLeases.name,
                    RestoreAPI.getChecklist.name, RestoreAPI.completeItem.name, RestoreAPI.deploy.name,
                    RestoreAPI.resumeHaSync.name,
                ]),
                (AuditAPI.serviceName, [AuditAPI.list.name]),
                // Another device's own service: its exports are the fleet's plumbing, not a device's to call.
                (BusProtocol.deviceService(other.id), [DeviceAPI.describe.name, DeviceAPI.startExport.name]),
            ]
            #expect(walk.map(\.methods.count).reduce(0, +) > 30, "the walk covers the services' methods")
            let client = system.client(caller: "device-walk", as: "ro-1")
            defer { client.close() }
            var answered: [String] = []
            for (service, methods) in walk {
                for method in methods {
                    do {
                        let _: Google_Protobuf_Empty = try await client.call(
                            service: service, method: method, Google_Protobuf_Empty(), timeout: .seconds(10))
                        answered.append("\(method): OK")
                    } catch let error as RPCError where error.code == .permissionDenied {
                        continue
                    } catch {
                        answered.append("\(method): \(error)")
                    }
                }
            }
            #expect(answered.isEmpty, "a device key got something else than PERMISSION_DENIED: \(answered)")

            // What a device needs still works with its key: its own record and presence.
            let own: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.getDevice,
                Rampart_Inventory_V1_GetDeviceRequest.with { $0.device = "ro-1" })
            #expect(own.device.name == "ro-1")
            let status = try await system.rampart(as: "ro-1", ["bus", "status"])
            #expect(status.exitCode == 4 && !status.stdout.contains(other.id), "\(status)")
        }
    }
}
