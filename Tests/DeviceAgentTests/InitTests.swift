import DeviceAgentCore
import Foundation
import RampartArchive
import Testing

@Suite("Device agent: init, the device folder")
struct InitTests {
    @Test("Device agent: init creates facts.json, a 32-byte device.key of mode 0600, config/ and backups/")
    func layout() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DeviceFolder.initialize(at: path, facts: sampleFacts())
        let manager = FileManager.default
        #expect(manager.fileExists(atPath: path + "/facts.json"))
        #expect(manager.fileExists(atPath: path + "/backups"))
        let key = try manager.attributesOfItem(atPath: path + "/device.key")
        #expect((key[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(manager.contents(atPath: path + "/device.key")?.count == 32)
        let files = tree(path + "/config")
        for expected in [
            "running-config", "interfaces.json", "management.json", "manager-registration.json",
            "policies/access-policy.json", "policies/nat-policy.json", "pki/device-identity.crt",
            "pki/device-identity.key.enc", "pki/https-server.crt", "pki/https-server.key.enc", "vpn/site-to-site.json",
            "vpn/remote-access.json", "vpn/certs/branch-east.crt",
        ] {
            #expect(files[expected] != nil, "\(expected) missing")
        }
        for (path, contents) in files where path.hasSuffix(".json") {
            #expect((try? JSONSerialization.jsonObject(with: contents)) != nil, "\(path) is not valid JSON")
        }
        #expect(String(decoding: files["management.json"]!, as: UTF8.self).contains("10.0.0.11"))
        #expect(try DeviceFolder.open(path).facts == folder.facts)
        #expect(try folder.registration() == ("", ""))
    }

    @Test("Device agent: the same facts and seed give the same tree (encrypted keys aside) and the same clear keys")
    func deterministic() throws {
        let first = temporaryPath("a")
        let second = temporaryPath("b")
        defer {
            try? FileManager.default.removeItem(atPath: first)
            try? FileManager.default.removeItem(atPath: second)
        }
        let a = try DeviceFolder.initialize(at: first, facts: sampleFacts())
        let b = try DeviceFolder.initialize(at: second, facts: sampleFacts())
        let treeA = tree(first + "/config").filter { !$0.key.hasSuffix(".key.enc") }
        let treeB = tree(second + "/config").filter { !$0.key.hasSuffix(".key.enc") }
        #expect(treeA == treeB)
        #expect(try a.exportFiles() == b.exportFiles())
        // device.key is random: the stored keys differ although the clear keys are the same.
        #expect(tree(first + "/config")["pki/https-server.key.enc"] != tree(second + "/config")["pki/https-server.key.enc"])
        let third = temporaryPath("c")
        defer { try? FileManager.default.removeItem(atPath: third) }
        try DeviceFolder.initialize(at: third, facts: sampleFacts(seed: 43))
        #expect(tree(third + "/config")["policies/access-policy.json"] != treeA["policies/access-policy.json"])
    }

    @Test("Device agent: the configuration is roughly the size asked for", arguments: [16 * 1024, 64 * 1024, 512 * 1024, 1 << 20])
    func size(bytes: Int) throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DeviceFolder.initialize(at: path, facts: sampleFacts(configSize: bytes))
        let actual = Double(folder.configBytes())
        #expect(actual >= Double(bytes) * 0.95 && actual <= Double(bytes) * 1.10, "\(actual) bytes for \(bytes) asked")
    }

    @Test("B12: private keys are never in clear in the device folder")
    func keysEncrypted() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DeviceFolder.initialize(at: path, facts: sampleFacts())
        for (file, contents) in tree(path) {
            #expect(!String(decoding: contents, as: UTF8.self).contains("PRIVATE KEY"), "\(file) holds a clear key")
            #expect(file == "device.key" || !file.hasSuffix(".key"), "\(file) is a clear key file")
        }
        for file in tree(path + "/config").keys where file.hasSuffix(".key.enc") {
            let attributes = try FileManager.default.attributesOfItem(atPath: path + "/config/" + file)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        }
        let exported = try folder.exportFiles()
        let keys = exported.filter { $0.path.hasSuffix(".key") }
        #expect(keys.map(\.path) == ["pki/device-identity.key", "pki/https-server.key", "pki/syslog-tls.key"])
        #expect(keys.allSatisfy { String(decoding: $0.contents, as: UTF8.self).hasPrefix("-----BEGIN PRIVATE KEY-----") })
    }

    @Test("Device agent: a key encrypted under another device's key cannot be decrypted")
    func wrongKey() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DeviceFolder.initialize(at: path, facts: sampleFacts())
        try Data(repeating: 7, count: 32).write(to: URL(fileURLWithPath: path + "/device.key"))
        #expect(throws: AgentError.self) { try folder.exportFiles() }
    }

    @Test("Device agent: init refuses to overwrite an existing device folder, and bad facts")
    func refusals() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try DeviceFolder.initialize(at: path, facts: sampleFacts())
        #expect(throws: AgentError.self) { try DeviceFolder.initialize(at: path, facts: sampleFacts()) }
        var bad = sampleFacts()
        bad.platform = "mainframe"
        #expect(throws: AgentError.self) { try DeviceFolder.initialize(at: temporaryPath(), facts: bad) }
        var virtual = sampleFacts()
        virtual.platform = "virtual"
        #expect(throws: AgentError.self) { try virtual.validate() }  // no hypervisor
        virtual.hypervisor = "kvm"
        try virtual.validate()
    }

    @Test("Device agent: registration is written into the configuration tree (B11)")
    func registration() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DeviceFolder.initialize(at: path, facts: sampleFacts())
        try folder.writeRegistration(managerId: "mgr-7", deviceId: "dev-123")
        #expect(try folder.registration() == ("mgr-7", "dev-123"))
    }

    @Test("Device agent: sizes as people write them", arguments: [
        ("65536", 65536), ("64KiB", 65536), ("1MiB", 1 << 20), ("512KiB", 512 << 10), ("512K", 512 << 10),
        ("2MB", 2_000_000), ("1 GiB", 1 << 30),
    ])
    func byteSizes(text: String, bytes: Int) {
        #expect(ByteSize.parse(text) == bytes)
    }

    @Test("Device agent: sizes that are not sizes are refused", arguments: ["", "MiB", "12XB", "-5", "1.5MiB"])
    func badByteSizes(text: String) {
        #expect(ByteSize.parse(text) == nil)
    }
}
