import Foundation
import RampartProto
import Testing

@testable import BackupWorkerService

@Suite("P18: what a restore drill decides (pure)")
struct DrillVerdictTests {
    static func coordinatorCheck(_ name: String, passed: Bool) -> Rampart_Restore_V1_RestoreCheck {
        var check = Rampart_Restore_V1_RestoreCheck()
        check.name = name
        check.rules = "R?"
        check.passed = passed
        if passed { check.detail = "fine" } else { check.reasons = ["\(name) is wrong"] }
        return check
    }

    @Test("P18, R12: the pre-restore checks about the live fleet (original disconnected, order) are reported, never fail a drill")
    func advisory() {
        var answer = Rampart_Restore_V1_CheckRestoreResponse()
        answer.checks = [
            Self.coordinatorCheck("own appliance", passed: true), Self.coordinatorCheck("hardware", passed: true),
            Self.coordinatorCheck("original disconnected", passed: false), Self.coordinatorCheck("order", passed: false),
        ]
        let checks = DrillVerdict.preRestore(answer)
        #expect(checks.map(\.name) == ["pre-restore: own appliance", "pre-restore: hardware", "pre-restore: original disconnected", "pre-restore: order"])
        #expect(checks.filter(\.advisory).map(\.name) == ["pre-restore: original disconnected", "pre-restore: order"])
        let (passed, reason) = DrillVerdict.decide(checks)
        #expect(passed && reason.isEmpty)
    }

    @Test("P18, R3, R4: a failed pre-restore check about the replacement or the backup fails the drill and is its reason")
    func failing() {
        var answer = Rampart_Restore_V1_CheckRestoreResponse()
        answer.checks = [Self.coordinatorCheck("software", passed: false), Self.coordinatorCheck("order", passed: false)]
        let checks = DrillVerdict.preRestore(answer) + [DrillVerdict.check("tree", passed: true, "equal")]
        let (passed, reason) = DrillVerdict.decide(checks)
        #expect(!passed)
        #expect(reason == "pre-restore: software: software is wrong")
    }

    static func result(_ device: String, passed: Bool) -> Rampart_Backup_V1_DrillResult {
        var result = Rampart_Backup_V1_DrillResult()
        result.deviceName = device
        result.passed = passed
        result.reason = passed ? "" : "tree: differs"
        return result
    }

    @Test("P18: a drill task succeeds when every device's backup restores, partially when some do, fails when none does")
    func outcome() {
        #expect(DrillVerdict.outcome([Self.result("a", passed: true), Self.result("b", passed: true)], missing: []).state == .taskSucceeded)
        let partial = DrillVerdict.outcome([Self.result("a", passed: true), Self.result("b", passed: false)], missing: [])
        #expect(partial.state == .taskPartiallySucceeded)
        #expect(partial.message == "restorable: a; not restorable: b (tree: differs)")
        #expect(DrillVerdict.outcome([Self.result("a", passed: false)], missing: []).state == .taskFailed)
        let none = DrillVerdict.outcome([], missing: ["c"])
        #expect(none.state == .taskFailed && none.message == "not restorable: c (no good backup to drill)")
        #expect(DrillVerdict.outcome([Self.result("a", passed: true)], missing: ["c"]).state == .taskPartiallySucceeded)
    }

    @Test("P18: the replacement's facts are the original's hardware and software with a drill serial, interfaces added up by type")
    func facts() {
        var device = Rampart_Inventory_V1_Device()
        device.serial = "FCH0001"
        device.model = "FPR-3120"
        device.platform = .physical
        device.software.version = "7.4.1"
        device.software.patch = 2
        device.networkModules = 1
        for (type, count) in [("1GbE", 4), ("1GbE", 4), ("10GbE", 2)] {
            var group = Rampart_Inventory_V1_InterfaceGroup()
            group.type = type
            group.count = UInt32(count)
            device.interfaces.append(group)
        }
        let serial = DrillVerdict.drillSerial()
        let facts = DrillVerdict.replacementFacts(device, serial: serial)
        #expect(serial.hasPrefix("DRILL") && serial.count == 15 && serial != device.serial)
        #expect(facts.serial == serial && facts.model == "FPR-3120" && facts.platform == "physical")
        #expect(facts.software.version == "7.4.1" && facts.software.patch == 2 && facts.networkModules == 1)
        #expect(facts.interfaces == ["1GbE": 8, "10GbE": 2])
    }

    static func backup(_ id: String, owner: String, members: [String] = [], at: Int64) -> Rampart_Backup_V1_Backup {
        var backup = Rampart_Backup_V1_Backup()
        backup.id = id
        backup.ownerID = owner
        backup.createdUnixMs = at
        backup.members = members.map {
            var member = Rampart_Backup_V1_BundleMember()
            member.deviceID = $0
            return member
        }
        return backup
    }

    @Test("P16, P18: a backup whose drill failed is not its device's last good backup: retention keeps the one before it")
    func lastGood() {
        let backups = [
            Self.backup("old", owner: "fw", at: 1), Self.backup("new", owner: "fw", at: 2),
            Self.backup("b1", owner: "cl", members: ["n1", "n2"], at: 1),
            Self.backup("b2", owner: "cl", members: ["n1", "n2"], at: 2),
        ]
        #expect(Pruner.lastGood(of: backups) == ["new", "b2"])
        // new failed for fw; b2 failed for n2 only: n1's last good is still b2, n2's is b1.
        #expect(Pruner.lastGood(of: backups, failedDrills: ["new/fw", "b2/n2"]) == ["old", "b2", "b1"])
    }
}
