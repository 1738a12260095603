import Foundation
import RampartArchive
import Testing

@Suite("R3, R4: a backup restores only onto the same appliance (one rule for device and coordinator)")
struct ApplianceMatchTests {
    static func facts(
        model: String = "FPR-3120", modules: Int = 1, interfaces: [(type: String, count: Int)] = [("1GbE-RJ45", 8)],
        version: String = "7.4.1", patch: Int = 2
    ) -> ApplianceMatch.Facts {
        ApplianceMatch.Facts(model: model, networkModules: modules, interfaces: interfaces, version: version, patch: patch)
    }

    @Test("R3, R4: the same appliance matches")
    func same() {
        #expect(ApplianceMatch.hardware(Self.facts(), backup: Self.facts(), subject: "this device").isEmpty)
        #expect(ApplianceMatch.software(Self.facts(), backup: Self.facts(), subject: "this device").isEmpty)
    }

    @Test("R3: a group of 0 interfaces is the same as none, and groups of one type are added up")
    func zeroCountGroups() {
        let withEmpty = Self.facts(interfaces: [("1GbE-RJ45", 8), ("10GbE-SFP+", 0)])
        #expect(ApplianceMatch.hardware(withEmpty, backup: Self.facts(), subject: "this device").isEmpty)
        #expect(ApplianceMatch.hardware(Self.facts(), backup: withEmpty, subject: "this device").isEmpty)
        let split = Self.facts(interfaces: [("1GbE-RJ45", 4), ("1GbE-RJ45", 4)])
        #expect(ApplianceMatch.hardware(split, backup: Self.facts(), subject: "this device").isEmpty)
        #expect(withEmpty.interfacesText == "1GbE-RJ45=8")
    }

    @Test("R3: every difference is one line naming both values, in the caller's words")
    func hardwareDifferences() {
        let other = Self.facts(model: "FPR-4215", modules: 2, interfaces: [("1GbE-RJ45", 4), ("25GbE-SFP28", 8)])
        #expect(
            ApplianceMatch.hardware(other, backup: Self.facts(), subject: "the replacement") == [
                "model: the replacement is a FPR-4215, the backup is of a FPR-3120 (R3)",
                "network modules: the replacement has 2, the backup's device had 1 (R3)",
                "interfaces: the replacement has 4 1GbE-RJ45, the backup's device had 8 (R3)",
                "interfaces: the replacement has 8 25GbE-SFP28, the backup's device had none (R3)",
            ])
        let fewer = Self.facts(interfaces: [])
        #expect(
            ApplianceMatch.hardware(fewer, backup: Self.facts(), subject: "this device")
                == ["interfaces: the backup's device had 8 1GbE-RJ45, this device has none (R3)"])
    }

    @Test("R4: another version, else another patch, named with both")
    func softwareDifferences() {
        #expect(
            ApplianceMatch.software(Self.facts(version: "7.6.0", patch: 0), backup: Self.facts(), subject: "this device")
                == ["software version: this device runs 7.6.0 patch 0, the backup was taken on 7.4.1 patch 2 (R4)"])
        #expect(
            ApplianceMatch.software(Self.facts(patch: 1), backup: Self.facts(), subject: "the replacement")
                == ["patch: the replacement runs 7.4.1 patch 1, the backup was taken on 7.4.1 patch 2 (R4)"])
    }
}

@Suite("R8: a cluster bundle is never restored (one rule for device and coordinator)")
struct BundleRefusalTests {
    @Test("R8: a bundle is known by its name (.tar.gz, .tgz, any case) or, when the bytes are at hand, by gzip's magic")
    func isBundle() {
        #expect(ClusterBundle.isBundle(fileName: "cl.20261207T101500Z.tar.gz"))
        #expect(ClusterBundle.isBundle(fileName: "CL.TGZ"))
        #expect(ClusterBundle.isBundle(fileName: "renamed.tar", firstBytes: Data([0x1f, 0x8b, 0x08])))
        #expect(!ClusterBundle.isBundle(fileName: "cl-n1_control_20261207T101500Z.tar"))
        #expect(!ClusterBundle.isBundle(fileName: "fw.tar", firstBytes: Data([0x1f])))
        #expect(!ClusterBundle.isBundle(fileName: "fw.tar", firstBytes: Data("manifest".utf8)))
    }

    @Test("R8: the refusal says what to do, naming the nodes when known")
    func refusal() {
        let text = ClusterBundle.restoreRefusal(fileName: "cl.tar.gz", nodes: ["cl-n1 (control)", "cl-n2 (data)"])
        #expect(text.contains("it holds files for cl-n1 (control), cl-n2 (data)"))
        #expect(text.contains("'rampart backups extract cl.tar.gz --node NAME'") && text.contains("(R8)"))
        #expect(!ClusterBundle.restoreRefusal(fileName: "cl.tar.gz").contains("holds files"))
    }
}
