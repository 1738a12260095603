import Foundation
import RampartAPI
import RampartJSON
import RampartProto
import RampartTesting
import Testing

/// docs/rma.md, run as written: every `bash` block of the page, in order, in one shell, against a
/// running system with the fleet of dev/fleet.json (the names the page uses).
@Suite("R1–R14: the RMA walkthrough of docs/rma.md, run as written (real processes)", .serialized)
struct RMAWalkthroughTests {
    /// The `bash` blocks of `markdown`, in order.
    static func bashBlocks(_ markdown: String) -> [String] {
        var blocks: [String] = []
        var current: [String]?
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```bash" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else if current != nil {
                current!.append(String(line))
            }
        }
        return blocks
    }

    @Test("R1, R2, R7, R8, R9, R12, R13: a standalone device, both peers of an HA pair, a cluster's control and data node replaced, as docs/rma.md says")
    func walkthrough() async throws {
        let page = try String(contentsOfFile: Examples.repository + "/docs/rma.md", encoding: .utf8)
        let blocks = Self.bashBlocks(page)
        #expect(blocks.count >= 10, "the page's runnable blocks: \(blocks.count)")
        let fleetJSON = try Data(contentsOf: URL(fileURLWithPath: Examples.repository + "/dev/fleet.json"))
        var spec = try JSONDecoder().decode(FleetSpec.self, from: fleetJSON)
        spec.configSize = "32KiB"

        try await withBackupSystem(spec, links: true) { system in
            try system.system.start("restore-coordinator", ["--lease-seconds", "30"])
            try await system.system.waitUntilServing(RestoreAPI.serviceName)

            // The page runs from the repository's root after dev/up.sh: give it one here.
            let root = system.system.logDirectory + "/walkthrough"
            let fm = FileManager.default
            try fm.createDirectory(atPath: root + "/.rampart", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/.build", withIntermediateDirectories: true)
            try fm.createSymbolicLink(atPath: root + "/.rampart/fleet", withDestinationPath: system.system.logDirectory + "/fleet")
            try fm.createSymbolicLink(atPath: root + "/.build/debug", withDestinationPath: Binaries.directory)
            let script = root + "/rma.sh"
            try ("cd \(root)\n" + blocks.joined(separator: "\n")).write(toFile: script, atomically: true, encoding: .utf8)
            defer {
                // The replacements run on as the devices they replaced (as the page says): stop them.
                let pids = (try? fm.contentsOfDirectory(atPath: root + "/.rampart/rma"))?.filter { $0.hasSuffix(".pid") } ?? []
                for file in pids {
                    if let text = try? String(contentsOfFile: root + "/.rampart/rma/" + file, encoding: .utf8),
                        let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
                    {
                        kill(pid, SIGTERM)
                    }
                }
            }

            var environment = system.system.environment
            environment["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            environment["HOME"] = root
            let run = try await ChildProcess.run("/bin/bash", ["-euo", "pipefail", script], environment: environment)
            let consoles = ((try? fm.contentsOfDirectory(atPath: root + "/.rampart/rma")) ?? []).filter { $0.hasSuffix(".console") }
                .sorted().map { name in
                    "--- \(name)\n" + ((try? String(contentsOfFile: root + "/.rampart/rma/" + name, encoding: .utf8)) ?? "")
                }.joined(separator: "\n")
            #expect(run.exitCode == 0, "the page's commands failed:\n\(run)\n\(consoles)")

            // What the page promises, read back independently of its own checks.
            let client = system.system.client()
            defer { client.close() }
            let replaced = [
                "fw-edge-1": "FCH2201A0E9", "fw-ha-a": "FCH2301B0B1", "fw-ha-b": "FCH2301B0B2", "cl-node-1": "FLM24000RM1",
                "cl-node-3": "FLM24000RM3",
            ]
            for (name, serial) in replaced.sorted(by: { $0.key < $1.key }) {
                let response: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                    InventoryAPI.getDevice,
                    Rampart_Inventory_V1_GetDeviceRequest.with { $0.device = name })
                let device = response.device
                #expect(device.serial == serial && device.connected && !device.outOfDate, "R9, R13: \(name) restored and deployed: \(device)")
                let checklist = try await system.system.rampart("restore", "checklist", name, "--output", "json")
                let items = try OperatorJSON.decode(Rampart_Restore_V1_ChecklistResponse.self, from: checklist.stdout).checklist.items
                #expect(!items.isEmpty && items.allSatisfy(\.done), "R13: \(name)'s checklist is done: \(checklist)")
            }
            let pair = try await system.system.rampart("ha-pairs", "show", "ha-dc1", "--output", "json")
            #expect(pair.stdout.contains("\"sync_state\":\"active\""), "R13: HA sync resumed: \(pair)")
        }
    }
}
