import ArgumentParser
import DeviceAgentCore
import Foundation
import Logging
import RampartBus
import RampartCore
import ServiceLifecycle

/// `device-agent`: a simulated threat defense device (or a fleet of them) on the bus.
@main
struct DeviceAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device-agent",
        abstract: "A simulated threat defense device: its facts, configuration tree and backups, served on the bus.",
        subcommands: [Init.self, Run.self, Fleet.self, Power.self, ChangeConfig.self, Cli.self, Drill.self])
}

/// The manager a device registers with (`RAMPART_MANAGER_ID`); empty: the installation's, which
/// inventory fills in at registration (R6).
private var defaultManagerId: String { Environment.value("RAMPART_MANAGER_ID") ?? "" }

extension DeviceAgentCommand {
    /// `device-agent init`: creates a device folder.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a device folder: facts.json, device.key, config/ (the configuration tree), backups/.")

        @Option(help: "The device folder to create (must not exist, or be empty).") var dir: String
        @Option(help: "Device name (unique in inventory).") var name: String
        @Option(help: "Serial number (letters and digits).") var serial: String
        @Option(help: "Model, e.g. FPR-3120 or FTDv.") var model: String
        @Option(help: "physical, native-instance, container-instance or virtual.") var platform: String
        @Option(help: "For virtual devices: vmware, kvm, hyperv, aws, azure, gcp, oci, openstack, nutanix, alibaba.")
        var hypervisor: String = ""
        @Option(help: "Software version without patch, e.g. 7.4.1.") var software: String
        @Option(help: "Patch level (0 = none).") var patch: Int = 0
        @Option(help: "Network modules installed.") var networkModules: Int = 0
        @Option(name: .customLong("interface"), help: "Physical interfaces, TYPE=COUNT (repeatable), e.g. 1GbE-RJ45=8.")
        var interfaces: [String] = []
        @Option(help: "Management IP address.") var managementIp: String
        @Option(help: "Approximate size of the configuration tree: bytes, or 64KiB, 512KiB, 1MiB.")
        var configSize: String = "64KiB"
        @Option(help: "Seed of the generated configuration (default: derived from name and serial).") var seed: UInt64?

        func facts() throws -> DeviceProfile {
            var groups: [DeviceProfile.InterfaceGroup] = []
            for text in interfaces {
                let parts = text.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, !parts[0].isEmpty, let count = Int(parts[1]), count > 0 else {
                    throw ValidationError("--interface must be TYPE=COUNT with a positive count, e.g. 1GbE-RJ45=8; not '\(text)'")
                }
                groups.append(.init(type: String(parts[0]), count: count))
            }
            guard let size = ByteSize.parse(configSize) else {
                throw ValidationError("--config-size must be a size such as 65536, 64KiB or 1MiB; not '\(configSize)'")
            }
            return DeviceProfile(
                name: name, serial: serial, model: model, platform: platform, hypervisor: hypervisor, software: software,
                patch: patch, networkModules: networkModules, interfaces: groups, managementIp: managementIp,
                configSize: size, seed: seed)
        }

        func validate() throws {
            do {
                try facts().validate()
            } catch let error as AgentError {
                throw ValidationError(error.description)
            }
        }

        func run() throws {
            let folder = try DeviceFolder.initialize(at: dir, facts: try facts())
            print(
                "created device \(folder.facts.name) in \(dir): configuration \(ByteSize.describe(Int(folder.configBytes()))), seed \(folder.facts.seed)"
            )
        }
    }

    /// `device-agent run`: serves one device.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the device in DIR: find (or --register) it in inventory, serve device/<id>, report presence.")

        @Option(help: "The device folder (made by 'device-agent init').") var dir: String
        @Flag(help: "Register the device in inventory when it is not there.") var register = false
        @Flag(help: "StartExport fails with INTERNAL 'simulated export failure'.") var failExport = false
        @Option(help: "Sleep this long before answering each ReadExport chunk, ms.") var slowExportMs: Int = 0
        @Option(help: "How often presence is reported to inventory, ms.") var presenceIntervalMs: Int64 = 10_000
        @OptionGroup var bus: BusOptions
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard slowExportMs >= 0 else { throw ValidationError("--slow-export-ms must not be negative") }
            guard presenceIntervalMs >= 100 else { throw ValidationError("--presence-interval-ms must be at least 100") }
        }

        func run() async throws {
            let logger = log.bootstrap("rampart.device-agent")
            if let recovery = try ConfigSwap.recover(directory: dir) {
                logger.notice("recovered an interrupted restore", metadata: ["outcome": "\(recovery)"])
            }
            let folder = try DeviceFolder.open(dir)
            let security = try bus.security(defaultKey: "devices/\(folder.facts.name).key", logger: logger)
            var configuration = DeviceRunner.Configuration(busEndpoint: bus.endpoint, security: security)
            configuration.heartbeatMs = bus.heartbeatMs
            configuration.register = register
            configuration.managerId = defaultManagerId
            configuration.presenceIntervalMs = presenceIntervalMs
            configuration.options = DeviceAgent.Options(failExport: failExport, slowExportMs: slowExportMs)
            let client = BusClient(
                endpoint: bus.endpoint, security: security, caller: "device-agent@\(folder.facts.name)", logger: logger)
            defer { client.close() }
            let runner = DeviceRunner(folder: folder, configuration: configuration, client: client, logger: logger)
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: runner)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    /// `device-agent cli`: the device's interactive command line (restore, R1, R2).
    struct Cli: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "The device's interactive CLI on stdin/stdout: 'restore remote-manager-backup ...', 'help', 'exit'.",
            discussion: """
                Commands (one per line; the prompt is '> '):
                  restore remote-manager-backup location HOST USER PATH backup TAR-FILE   (scp; HOST may be host:port)
                  restore remote-manager-backup url URL                                    (a signed link from 'rampart links export')
                  restore remote-manager-backup backup TAR-FILE                            (from DIR/backups/)
                  restore remote-manager-backup check location|url|backup ...              (every check; changes nothing)
                  help
                  exit
                After a restore the user is logged out, the device reboots (--reboot-delay-ms) and runs as the
                restored device, serving device/<id> until SIGTERM. See docs/device-agent.md, "Restore (R1–R14)".
                """)

        @Option(help: "The device folder (made by 'device-agent init').") var dir: String
        @Option(help: "The logged-in CLI user (recorded with the restore lease).")
        var user: String = ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "admin"
        @Option(help: "How long the simulated reboot after a restore takes, ms.") var rebootDelayMs: Int64 = 3000
        @Option(help: "Private key for scp (-i FILE).") var sshIdentity: String?
        @Option(help: "Known-hosts file for scp (-o UserKnownHostsFile=FILE); default: ssh's own.")
        var sshKnownHosts: String?
        @Option(help: "The longest a backup download may take, seconds.") var fetchTimeout: Int = 600
        @Option(help: "Timeout of each call to the restore coordinator, seconds.") var timeout: Int = 10
        @Option(help: "How often the restored device reports presence, ms.") var presenceIntervalMs: Int64 = 10_000
        @Option(
            help: ArgumentHelp(
                "Test switch: a restore waits after staging, before its lease is confirmed and anything is written, "
                    + "until FILE exists.", valueName: "FILE"))
        var holdBeforeWrite: String?
        @Option(
            help: ArgumentHelp(
                "Test switch: the simulated reboot after a restore lasts until FILE exists (and --reboot-delay-ms).",
                valueName: "FILE"))
        var holdReboot: String?
        @OptionGroup var bus: BusOptions
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard (0...600_000).contains(rebootDelayMs) else {
                throw ValidationError("--reboot-delay-ms must be between 0 and 600000")
            }
            guard !user.isEmpty, user.utf8.count <= 64, !user.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                throw ValidationError("--user must be 1 to 64 printable characters")
            }
            guard (1...86_400).contains(fetchTimeout) else {
                throw ValidationError("--fetch-timeout must be 1 to 86400 seconds")
            }
            guard (1...300).contains(timeout) else { throw ValidationError("--timeout must be 1 to 300 seconds") }
            guard presenceIntervalMs >= 100 else {
                throw ValidationError("--presence-interval-ms must be at least 100")
            }
            for (flag, file) in [
                ("--ssh-identity", sshIdentity), ("--ssh-known-hosts", sshKnownHosts),
                ("--hold-before-write", holdBeforeWrite), ("--hold-reboot", holdReboot),
            ] {
                if let file, file.isEmpty || file.hasPrefix("-") {
                    throw ValidationError("\(flag) must name a file")
                }
            }
            if let sshIdentity, !FileManager.default.isReadableFile(atPath: sshIdentity) {
                throw ValidationError("--ssh-identity \(sshIdentity) cannot be read")
            }
        }

        func run() async throws {
            let logger = log.bootstrap("rampart.device-agent.cli")
            // A console reader that goes away must not kill the device (write errors are ignored instead).
            signal(SIGPIPE, SIG_IGN)
            let name = try DeviceFolder.open(dir).facts.name
            var configuration = DeviceCLI.Configuration(
                busEndpoint: bus.endpoint, security: try bus.security(defaultKey: "devices/\(name).key", logger: logger))
            configuration.heartbeatMs = bus.heartbeatMs
            configuration.user = user
            configuration.rebootDelayMs = rebootDelayMs
            configuration.presenceIntervalMs = presenceIntervalMs
            configuration.managerId = defaultManagerId
            configuration.callTimeout = .seconds(timeout)
            configuration.fetch.sshIdentity = sshIdentity
            configuration.fetch.sshKnownHosts = sshKnownHosts
            configuration.fetch.timeout = .seconds(fetchTimeout)
            configuration.holdBeforeWrite = holdBeforeWrite.map(RestoreSession.Hold.untilFileExists)
            configuration.holdReboot = holdReboot.map(RestoreSession.Hold.untilFileExists)
            let cli = DeviceCLI(
                directory: dir, configuration: configuration, input: .standardInput(), console: StandardConsole(),
                logger: logger)
            let group = ServiceGroup(
                configuration: .init(
                    // The CLI ends by itself at `exit` or end of input: that is a clean end, not a failure.
                    services: [.init(service: cli, successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    /// `device-agent fleet`: many devices in one process.
    struct Fleet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run many simulated devices in one process, from a spec file or a generated fleet.")

        @Option(help: "Folder of the fleet: one device folder per device, and fleet.json with --generate.") var dir: String
        @Option(help: "Fleet spec (JSON); see docs/device-agent.md.") var spec: String?
        @Flag(help: "Generate DIR/fleet.json from the counts below, then run it.") var generate = false
        @Option(help: "With --generate: standalone devices (every fifth a VMware virtual).") var standalone: Int = 0
        @Option(help: "With --generate: HA pairs.") var haPairs: Int = 0
        @Option(help: "With --generate: clusters.") var clusters: Int = 0
        @Option(help: "With --generate: nodes per cluster (control + data).") var clusterNodes: Int = 3
        @Option(help: "With --generate: virtual devices on KVM (not supported for backup, B2).") var kvm: Int = 0
        @Option(help: "With --generate: configuration size of each device (64KiB, 1MiB, ...).") var configSize: String = "64KiB"
        @Flag(help: "Register devices, HA pairs and clusters in inventory when missing.") var register = false
        @Option(help: "How often each device reports presence, ms.") var presenceIntervalMs: Int64 = 10_000
        @Option(help: "Registrations in flight at once.") var concurrency: Int = 16
        @Flag(help: "Prepare the folders (and fleet.json) and exit without connecting to the bus.") var prepareOnly = false
        @OptionGroup var bus: BusOptions
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard generate != (spec != nil) else { throw ValidationError("give either --spec FILE or --generate") }
            if generate {
                guard standalone >= 0, haPairs >= 0, clusters >= 0, kvm >= 0, standalone + haPairs + clusters + kvm > 0 else {
                    throw ValidationError("--generate needs at least one of --standalone, --ha-pairs, --clusters, --kvm (none negative)")
                }
                guard (2...16).contains(clusterNodes) else { throw ValidationError("--cluster-nodes must be between 2 and 16") }
                guard ByteSize.parse(configSize) != nil else { throw ValidationError("--config-size '\(configSize)' is not a size") }
            }
            guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be between 1 and 256") }
            guard presenceIntervalMs >= 100 else { throw ValidationError("--presence-interval-ms must be at least 100") }
        }

        func run() async throws {
            let logger = log.bootstrap("rampart.device-agent.fleet")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let fleet: FleetSpec
            if generate {
                fleet = FleetSpec.generate(
                    standalone: standalone, haPairs: haPairs, clusters: clusters, clusterNodes: clusterNodes, kvm: kvm,
                    configSize: configSize)
                try fleet.encoded().write(to: URL(fileURLWithPath: dir + "/fleet.json"))
                logger.notice("wrote \(dir)/fleet.json", metadata: ["devices": "\(fleet.devices.count)"])
            } else {
                fleet = try FleetSpec.load(spec ?? "")
            }
            do {
                try fleet.validate()
            } catch let error as AgentError {
                throw ValidationError(error.description)
            }
            if prepareOnly {
                let folders = try await FleetRunner.prepare(directory: dir, spec: fleet)
                print("prepared \(folders.count) device folders in \(dir)")
                return
            }
            // The fleet registers what is missing as an operator would (its --key, or operators/admin.key of
            // --keys); each device then talks with its own key, devices/<name>.key of --keys.
            let security = try bus.security(defaultKey: "operators/admin.key", logger: logger)
            let keysDirectory = bus.keysDirectory
            guard security == .plain || keysDirectory != nil else {
                throw ValidationError("a fleet needs --keys DIR (or RAMPART_KEYS): each device uses DIR/devices/<name>.key")
            }
            let deviceSecurity: @Sendable (String) throws -> BusSecurity = { name in
                guard let keysDirectory else { return .plain }
                return .curve(try BusKeyFile.load(KeyFolder(path: keysDirectory).keyPath(role: .device, name: name)))
            }
            var base = DeviceRunner.Configuration(busEndpoint: bus.endpoint, security: security)
            base.heartbeatMs = bus.heartbeatMs
            base.register = register
            base.managerId = defaultManagerId
            base.presenceIntervalMs = presenceIntervalMs
            let client = BusClient(endpoint: bus.endpoint, security: security, caller: "device-agent-fleet", logger: logger)
            defer { client.close() }
            let runner = FleetRunner(
                directory: dir, spec: fleet, base: base, client: client, deviceSecurity: deviceSecurity, logger: logger,
                concurrency: concurrency)
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: runner)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}

extension DevicePower.State: ExpressibleByArgument {}

extension DeviceAgentCommand {
    /// `device-agent power`: switches one device of a running fleet off, frozen or on.
    struct Power: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch one device of a fleet off (dead without a word), frozen (hung) or on again.",
            discussion: """
                The running `device-agent fleet --dir DIR` applies the switch within a quarter of a second: `off` \
                drops the device from the bus with no goodbye and no presence report (as `kill -9` of a real \
                appliance); `frozen` keeps its connection but answers nothing (as `kill -STOP`); `on` boots an \
                off device afresh or lets a frozen one go on where it stopped. The switch is the file \
                DIR/power/NAME, and stays across fleet restarts until switched on.
                """)

        @Option(help: "Folder of the fleet (as given to `device-agent fleet --dir`).") var dir: String
        @Argument(help: "The device's name.") var name: String
        @Argument(help: "on, off or frozen.") var state: DevicePower.State

        func validate() throws {
            let folder = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
            guard FileManager.default.fileExists(atPath: folder + "/" + name + "/facts.json") else {
                let known = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
                    .filter { FileManager.default.fileExists(atPath: folder + "/" + $0 + "/facts.json") }.sorted()
                let hint = known.isEmpty ? "no device folders there" : "its devices: " + known.prefix(8).joined(separator: ", ")
                    + (known.count > 8 ? ", …" : "")
                throw ValidationError("\(folder) has no device '\(name)' (\(hint))")
            }
        }

        func run() throws {
            let folder = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
            try DevicePower.write(state, device: name, fleet: folder)
            print("\(name): \(state.rawValue)")
        }
    }
}

extension DeviceAgentCommand {
    /// `device-agent change-config`: an operator's change to a device's configuration, for diffs to show.
    struct ChangeConfig: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "change-config",
            abstract: "Change a simulated device's configuration, as an operator would (for diffs and demonstrations).",
            discussion: """
                DIR is a device folder (`device-agent init --dir`), or with NAME a fleet folder \
                (`device-agent fleet --dir`) and NAME one of its devices. The running device exports the new \
                configuration from its next backup on. With no option, an access rule and the SNMP location change.
                """)

        @Option(help: "A device folder, or a fleet folder with NAME.") var dir: String
        @Argument(help: "The device's name, when DIR is a fleet folder.") var name: String?
        @Option(help: "New `snmp-server location` in running-config.") var location: String?
        @Option(name: .customLong("add-access-rule"), help: "Append an access rule of this name to the access policy.")
        var accessRule: String?
        @Option(help: "Replace the private key and certificate pki/NAME.key, pki/NAME.crt (a secret change).")
        var rotateKey: String?

        var deviceFolder: String {
            let folder = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
            return name.map { folder + "/" + $0 } ?? folder
        }

        func validate() throws {
            guard FileManager.default.fileExists(atPath: deviceFolder + "/facts.json") else {
                throw ValidationError(
                    name == nil
                        ? "\(dir) is not a device folder (no facts.json); for a fleet's device give its name after --dir"
                        : "\(dir) has no device '\(name ?? "")'")
            }
        }

        func run() throws {
            let folder = try DeviceFolder.open(deviceFolder)
            var change = ConfigChange(location: location, accessRule: accessRule, rotateKey: rotateKey)
            if change.isEmpty {
                let stamp = Int(Date().timeIntervalSince1970)
                change = ConfigChange(location: "rack-\(stamp % 100)-moved", accessRule: "allow-admin-\(stamp)")
            }
            let written = try folder.change(change)
            print("\(folder.facts.name): changed \(written.joined(separator: ", "))")
        }
    }
}

extension DeviceAgentCommand {
    /// `device-agent drill`: a restore drill of one archive on a throwaway replacement (P18).
    struct Drill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup onto a throwaway replacement in a scratch folder and check the result (a drill).",
            discussion: """
                Makes a device folder in DIR with the original's hardware facts and software version (--facts: its \
                inventory record as JSON) and a drill serial, puts the archive in its backups/ folder, and restores it \
                with the device's own restore code under a local drill lease: nothing connects to the bus, nothing is \
                recorded anywhere. Then checks the restored configuration tree against the archive, the VPN \
                configuration removed (R10) and the private keys re-encrypted (R11). Exit 0: restorable; 2: not \
                restorable (the report says why); 1: the drill itself could not run. DIR holds decrypted keys while it \
                runs: its caller removes it. See docs/drills.md.
                """)

        @Option(help: "The scratch device folder to create (must not exist, or be empty; mode 0700).") var dir: String
        @Option(help: "The backup archive (.tar) to restore.") var archive: String
        @Option(help: "Its file name as a restore names it (default: the archive's).") var fileName: String?
        @Option(help: "The SHA-256 the archive must have (the backup record's).") var sha256: String = ""
        @Option(help: "The original device's inventory record, as JSON (protobuf JSON of rampart.inventory.v1.Device).")
        var facts: String
        @Option(help: "The replacement's serial (default: DRILL and ten random hex digits).") var serial: String?
        @Option(help: "table or json.") var output: String = "table"
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard output == "table" || output == "json" else { throw ValidationError("--output is table or json") }
            guard FileManager.default.isReadableFile(atPath: archive) else {
                throw ValidationError("--archive \(archive) cannot be read")
            }
            do {
                _ = try RestoreDrill.original(json: facts)
            } catch {
                throw ValidationError("--facts is not a device record in protobuf JSON: \(error)")
            }
        }

        func run() async throws {
            // A backup worker starts this, and ignores SIGTERM and SIGINT itself (its graceful shutdown
            // watches them): ignored signals are inherited, and a drill must end when its worker stops it.
            signal(SIGTERM, SIG_DFL)
            signal(SIGINT, SIG_DFL)
            let logger = log.bootstrap("rampart.device-agent.drill")
            var request = RestoreDrill.Request(
                directory: dir, archivePath: archive,
                fileName: fileName ?? URL(fileURLWithPath: archive).lastPathComponent, expectedSHA256: sha256,
                original: try RestoreDrill.original(json: facts))
            if let serial { request.serial = serial }
            let (text, passed) = try await RestoreDrill.runAndRender(request, json: output == "json", logger: logger)
            print(text)
            if !passed { throw ExitCode(2) }
        }
    }
}
