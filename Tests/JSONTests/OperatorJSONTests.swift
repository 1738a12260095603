import Foundation
import RampartAPI
import RampartJSON
import RampartRPC
import RampartProto
import SwiftProtobuf
import Testing

@Suite("P13: the CLI's JSON for scripts writes every field, spells enums as the tables, times in RFC 3339")
struct OperatorJSONTests {
    static func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test("P13: An empty lease response writes its lease as null and an empty list as []; a default device writes false, 0 and \"\"")
    func defaultsAreWritten() throws {
        let empty = try Self.object(OperatorJSON.encode(Rampart_Restore_V1_ListLeasesResponse()))
        #expect(empty["leases"] as? [Any] != nil && (empty["leases"] as? [Any])?.isEmpty == true, "\(empty)")
        let device = try Self.object(OperatorJSON.encode(Rampart_Inventory_V1_Device()))
        #expect(device["connected"] as? Bool == false, "\(device)")
        #expect(device["serial"] as? String == "", "\(device)")
        #expect((device["network_modules"] as? NSNumber)?.intValue == 0, "\(device)")
        #expect(device["software"] is NSNull, "an absent message is null: \(device)")
        #expect(device["platform"] as? String == "unspecified", "\(device)")
        #expect(device["last_seen"] is NSNull, "a time of 0 is null (never): \(device)")
        let response = try Self.object(OperatorJSON.encode(Rampart_Restore_V1_LeaseResponse()))
        #expect(response["lease"] is NSNull, "\(response)")
    }

    @Test("P13: Enum values as the tables spell them: running, all, ha-primary, resume-needed; status codes keep their names")
    func enumsAsTables() throws {
        var job = Rampart_Backup_V1_Job()
        job.state = .partiallySucceeded
        var task = Rampart_Backup_V1_Task()
        task.state = .taskRunning
        job.tasks = [task]
        let object = try Self.object(OperatorJSON.encode(job))
        #expect(object["state"] as? String == "partially-succeeded", "\(object)")
        let tasks = try #require(object["tasks"] as? [[String: Any]])
        #expect(tasks.first?["state"] as? String == "running", "\(object)")
        #expect(OperatorJSON.label(enum: "rampart.bus.v1.StatusCode", value: "NOT_FOUND") == "NOT_FOUND")
    }

    @Test("P13: Every enum value's JSON spelling is its table spelling (the labels the CLI prints)")
    func labelsAgreeWithTables() throws {
        func check<E: SwiftProtobuf.Enum & CaseIterable>(_ type: E.Type, _ name: String, _ table: (E) -> String) {
            for value in E.allCases where value.rawValue != 0 {
                let valueName = OperatorJSON.enums[name]?.first { $0.number == Int32(value.rawValue) }?.name ?? "?"
                #expect(OperatorJSON.label(enum: name, value: valueName) == table(value), "\(name).\(valueName)")
            }
        }
        check(Rampart_Inventory_V1_Platform.self, "rampart.inventory.v1.Platform") { $0.label }
        check(Rampart_Inventory_V1_Hypervisor.self, "rampart.inventory.v1.Hypervisor") { $0.label }
        check(Rampart_Inventory_V1_Role.self, "rampart.inventory.v1.Role") { $0.label }
        check(Rampart_Inventory_V1_SyncState.self, "rampart.inventory.v1.SyncState") { $0.label }
        check(Rampart_Restore_V1_LeaseState.self, "rampart.restore.v1.LeaseState") { $0.label }
        check(Rampart_Backup_V1_TargetKind.self, "rampart.backup.v1.TargetKind") { $0.label }
        check(Rampart_Backup_V1_JobState.self, "rampart.backup.v1.JobState") { $0.label }
        check(Rampart_Backup_V1_TaskState.self, "rampart.backup.v1.TaskState") { $0.label }
        check(Rampart_Backup_V1_ObjectiveState.self, "rampart.backup.v1.ObjectiveState") { $0.label }
        check(Rampart_Bus_V1_Role.self, "rampart.bus.v1.Role") { BusRole($0)?.rawValue ?? "" }
        check(Rampart_Storage_V1_FileChange.self, "rampart.storage.v1.FileChange") { $0.label }
        let checked: Set = [
            "rampart.inventory.v1.Platform", "rampart.inventory.v1.Hypervisor", "rampart.inventory.v1.Role",
            "rampart.inventory.v1.SyncState", "rampart.restore.v1.LeaseState", "rampart.backup.v1.TargetKind",
            "rampart.backup.v1.JobState", "rampart.backup.v1.TaskState", "rampart.bus.v1.StatusCode",
            "rampart.bus.v1.Role", "rampart.backup.v1.ObjectiveState", "rampart.storage.v1.FileChange",
        ]
        #expect(Set(OperatorJSON.enums.keys) == checked, "a new enum needs its table spelling checked here")
    }

    @Test("P13: Beside every X_unix_ms there is X in RFC 3339 with its zone")
    func timesWithZone() throws {
        var device = Rampart_Inventory_V1_Device()
        device.lastSeenUnixMs = 1_796_139_980_123  // 2026-12-01T15:46:20.123Z
        let object = try Self.object(OperatorJSON.encode(device))
        #expect(object["last_seen"] as? String == "2026-12-01T15:46:20.123Z", "\(object)")
        #expect((object["last_seen_unix_ms"] as? NSNumber)?.int64Value == 1_796_139_980_123, "\(object)")
    }

    @Test("P13: Operator JSON reads back into the same message (nothing is lost)")
    func roundTrip() throws {
        var device = Rampart_Inventory_V1_Device()
        device.name = "fw-1"
        device.platform = .virtual
        device.hypervisor = .kvm
        device.role = .haSecondary
        device.connected = true
        device.lastSeenUnixMs = 1_796_139_980_123
        var group = Rampart_Inventory_V1_InterfaceGroup()
        group.count = 4
        device.interfaces = [group]
        let text = try OperatorJSON.encode(device)
        #expect(try OperatorJSON.decode(Rampart_Inventory_V1_Device.self, from: text) == device, "\(text)")
        var job = Rampart_Backup_V1_Job()
        job.state = .cancelled
        var task = Rampart_Backup_V1_Task()
        task.state = .taskPartiallySucceeded
        job.tasks = [task, Rampart_Backup_V1_Task()]
        #expect(try OperatorJSON.decode(Rampart_Backup_V1_Job.self, from: OperatorJSON.encode(job)) == job)
    }
}
