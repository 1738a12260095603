import ArgumentParser
import Foundation
import RampartAPI
import RampartCore
import RampartInventory
import RampartProto


struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices", abstract: "Register, list, show, update and unregister devices.",
        subcommands: [
            Register.self, List.self, Show.self, Update.self, Unregister.self, Presence.self, OutOfDate.self,
            Support.self, Objective.self,
        ])

    /// The fields of a device, as flags; every one optional so `update` can take the same set.
    struct DeviceFields: ParsableArguments {
        @Option(help: "Serial number.") var serial: String?
        @Option(help: "Model, e.g. FPR-3120.") var model: String?
        @Option(help: "physical, native-instance, container-instance or virtual.") var platform: String?
        @Option(help: "For virtual devices: vmware, kvm, hyperv, aws, azure, gcp, oci, openstack, nutanix, alibaba.")
        var hypervisor: String?
        @Option(name: .customLong("software"), help: "Software version without patch, e.g. 7.4.1.") var version: String?
        @Option(help: "Patch level (7.4.1.2 is --software 7.4.1 --patch 2).") var patch: UInt32?
        @Option(name: .customLong("network-modules"), help: "Number of network modules.") var networkModules: UInt32?
        @Option(name: .customLong("interface"), help: "Physical interfaces by type, TYPE=COUNT (repeat).")
        var interfaces: [String] = []
        @Option(name: .customLong("management-ip"), help: "Management IP address.") var managementIP: String?
        @Option(name: .customLong("manager-id"), help: "The manager the device is registered with (env RAMPART_MANAGER_ID).")
        var managerID: String?

        /// Checks the values while parsing, so that a bad one is a usage error of this command (exit 64,
        /// its own usage), not of the whole CLI.
        func validate() throws {
            _ = try device(name: nil)
        }

        /// The device and the names of the fields that were given.
        func device(name: String?) throws -> (Rampart_Inventory_V1_Device, [String]) {
            var device = Rampart_Inventory_V1_Device()
            var fields: [String] = []
            if let name { device.name = name; fields.append("name") }
            if let serial { device.serial = serial; fields.append("serial") }
            if let model { device.model = model; fields.append("model") }
            if let platform {
                guard let value = Rampart_Inventory_V1_Platform(label: platform) else {
                    throw ValidationError("unknown --platform '\(platform)': physical, native-instance, container-instance or virtual")
                }
                device.platform = value
                fields.append("platform")
            }
            if let hypervisor {
                guard let value = Rampart_Inventory_V1_Hypervisor(label: hypervisor), value != .unspecified else {
                    throw ValidationError("unknown --hypervisor '\(hypervisor)'")
                }
                device.hypervisor = value
                fields.append("hypervisor")
            }
            if version != nil || patch != nil {
                device.software.version = version ?? ""
                device.software.patch = patch ?? 0
                fields.append("software")
            }
            if let networkModules { device.networkModules = networkModules; fields.append("network_modules") }
            if !interfaces.isEmpty {
                device.interfaces = try interfaces.map { text in
                    let parts = text.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, let count = UInt32(parts[1]) else {
                        throw ValidationError("--interface takes TYPE=COUNT, e.g. 10GbE-SFP+=8, not '\(text)'")
                    }
                    var group = Rampart_Inventory_V1_InterfaceGroup()
                    group.type = String(parts[0])
                    group.count = count
                    return group
                }
                fields.append("interfaces")
            }
            if let managementIP { device.managementIp = managementIP; fields.append("management_ip") }
            if let managerID { device.managerID = managerID; fields.append("manager_id") }
            return (device, fields)
        }
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a device with this manager.")
        @Argument(help: "The device's name.") var name: String
        @OptionGroup var fields: DeviceFields
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var (device, _) = try fields.device(name: name)
            // Empty: the installation's manager id, filled in by inventory (R6).
            if device.managerID.isEmpty { device.managerID = Environment.value("RAMPART_MANAGER_ID") ?? "" }
            var request = Rampart_Inventory_V1_RegisterDeviceRequest()
            request.device = device
            let response: Rampart_Inventory_V1_DeviceResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.registerDevice, request)
            }
            try printDevice(response.device, options.output)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered devices.")
        @Option(help: "Only this platform.") var platform: String?
        @Flag(help: "Only disconnected devices.") var disconnected = false
        @Flag(name: .customLong("out-of-date"), help: "Only devices marked out of date.") var outOfDate = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if let platform, Rampart_Inventory_V1_Platform(label: platform) == nil {
                throw ValidationError("unknown --platform '\(platform)': physical, native-instance, container-instance or virtual")
            }
        }

        func run() async throws {
            var request = Rampart_Inventory_V1_ListDevicesRequest()
            if let platform {
                guard let value = Rampart_Inventory_V1_Platform(label: platform) else {
                    throw ValidationError("unknown --platform '\(platform)'")
                }
                request.platform = value
            }
            request.onlyDisconnected = disconnected
            request.onlyOutOfDate = outOfDate
            // The JSON document stays inventory's ListDevicesResponse (P13: it reads back into that message);
            // every device's backup state, with the reason of an unsupported one, is `backups status --output json`.
            let json = options.output == .json
            let (response, backups) = try await options.withClient { client in
                let response: Rampart_Inventory_V1_ListDevicesResponse = try await options.call(
                    client, InventoryAPI.listDevices, request, idempotent: true)
                var statuses: [String: Rampart_Backup_V1_DeviceBackupStatus]?
                if !json { statuses = await deviceStatuses(options, client) }
                return (response, statuses)
            }
            if json { return try printJSON(response) }
            var table = Table(
                "NAME", "ROLE", "MODEL", "PLATFORM", "SOFTWARE", "MANAGEMENT IP", "STATE", "BACKUP", "LAST GOOD", "DRILL", "ID")
            for device in response.devices {
                let backup = backups?[device.id]
                table.add(
                    device.name, device.role.label, device.model, platformText(device),
                    InventoryRules.describe(device.software), device.managementIp, stateText(device),
                    backup.map(\.state.label) ?? "?", backup.map(ageText) ?? "?",
                    backups == nil ? "?" : deviceDrillText(backup), device.id)
            }
            print(table.render())
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one device.")
        @Argument(help: "Device name or id.") var device: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_GetDeviceRequest()
            request.device = device
            let response: Rampart_Inventory_V1_DeviceResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.getDevice, request, idempotent: true)
            }
            try printDevice(response.device, options.output)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change fields of a device (only those given).")
        @Argument(help: "Device name or id.") var device: String
        @Option(help: "New name.") var name: String?
        @OptionGroup var fields: DeviceFields
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let (values, names) = try fields.device(name: name)
            guard !names.isEmpty else { throw ValidationError("name at least one field to change") }
            var request = Rampart_Inventory_V1_UpdateDeviceRequest()
            request.device = device
            request.fields = names
            request.values = values
            if names.contains("software") && fields.version == nil {
                throw ValidationError("--patch needs --software too (the version and its patch change together)")
            }
            let response: Rampart_Inventory_V1_DeviceResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.updateDevice, request)
            }
            try printDevice(response.device, options.output)
        }
    }

    struct Unregister: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unregister a device. Never do this to restore a device (rule R14).")
        @Argument(help: "Device name or id.") var device: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_UnregisterDeviceRequest()
            request.device = device
            let response: Rampart_Inventory_V1_UnregisterDeviceResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.unregisterDevice, request)
            }
            if options.output == .json { return try printJSON(response) }
            print("unregistered \(device) (\(response.deviceID))")
        }
    }

    struct Presence: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Override a device's presence: connected or disconnected.",
            discussion: """
                Not needed in an RMA: presence follows the bus by itself — a device whose heartbeats stop is \
                marked disconnected within about 3 heartbeat intervals, and connected again when it comes back. \
                This override lasts until the device's next change on the bus or its agent's next report.
                """)
        @Argument(help: "Device name or id.") var device: String
        @Argument(help: "connected or disconnected.") var state: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            guard state == "connected" || state == "disconnected" else {
                throw ValidationError("state must be connected or disconnected")
            }
            var request = Rampart_Inventory_V1_ReportPresenceRequest()
            request.device = device
            request.connected = state == "connected"
            let response: Rampart_Inventory_V1_DeviceResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.reportPresence, request, idempotent: true)
            }
            try printDevice(response.device, options.output)
        }
    }

    struct OutOfDate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "out-of-date", abstract: "Mark a device out of date, or clear the mark with --clear.")
        @Argument(help: "Device name or id.") var device: String
        @Flag(help: "Clear the mark instead.") var clear = false
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_SetOutOfDateRequest()
            request.device = device
            request.outOfDate = !clear
            let response: Rampart_Inventory_V1_DeviceResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.setOutOfDate, request, idempotent: true)
            }
            try printDevice(response.device, options.output)
        }
    }

    struct Support: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Which devices can be backed up (rule B2), and why not.")
        @Argument(help: "Device names or ids (default: all).") var devices: [String] = []
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_BackupSupportRequest()
            request.devices = devices
            let response: Rampart_Inventory_V1_BackupSupportResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.backupSupport, request, idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            var table = Table("DEVICE", "BACKUP", "REASON")
            for result in response.results {
                table.add(result.deviceName, result.supported ? "supported" : "refused", result.reason)
            }
            print(table.render())
        }
    }
}

func platformText(_ device: Rampart_Inventory_V1_Device) -> String {
    device.platform == .virtual ? "virtual/\(device.hypervisor.label)" : device.platform.label
}

func stateText(_ device: Rampart_Inventory_V1_Device) -> String {
    (device.connected ? "connected" : "disconnected") + (device.outOfDate ? ",out-of-date" : "")
}

func printDevice(_ device: Rampart_Inventory_V1_Device, _ output: OutputFormat) throws {
    if output == .json { return try printJSON(device) }
    let interfaces = device.interfaces.map { "\($0.type)×\($0.count)" }.joined(separator: ", ")
    var table = Table("FIELD", "VALUE")
    table.add("id", device.id)
    table.add("name", device.name)
    table.add("serial", device.serial)
    table.add("model", device.model)
    table.add("platform", platformText(device))
    table.add("software", InventoryRules.describe(device.software))
    table.add("network modules", "\(device.networkModules)")
    table.add("interfaces", interfaces.isEmpty ? "-" : interfaces)
    table.add("management ip", device.managementIp)
    table.add("manager", device.managerID)
    table.add("role", device.role.label)
    if !device.haPairID.isEmpty { table.add("ha pair", device.haPairID) }
    if !device.clusterID.isEmpty { table.add("cluster", device.clusterID) }
    table.add("state", stateText(device))
    table.add("last seen", formatTime(device.lastSeenUnixMs))
    if device.identityConflictUnixMs != 0 {
        // The bus refused an appliance claiming this device (another device's key, or an old box back
        // after its RMA): when it last happened, and why.
        table.add("identity conflict", "\(formatTime(device.identityConflictUnixMs)): \(device.identityConflict)")
    }
    table.add("registered", formatTime(device.registeredUnixMs))
    table.add("updated", formatTime(device.updatedUnixMs))
    print(table.render())
}
