import ArgumentParser
import Foundation
import RampartAPI
import RampartBus
import RampartInventory
import RampartProto

struct HaPairsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ha-pairs", abstract: "Register, list, show, update and unregister HA pairs.",
        subcommands: [Register.self, List.self, Show.self, Update.self, Unregister.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Form an HA pair of two registered devices.")
        @Argument(help: "The pair's name.") var name: String
        @Option(help: "The primary peer (name or id).") var primary: String
        @Option(help: "The secondary peer (name or id).") var secondary: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_CreateHaPairRequest()
            request.name = name
            request.primary = primary
            request.secondary = secondary
            let response: Rampart_Inventory_V1_HaPairResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.createHaPair, request)
            }
            try printPair(response, options.output)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List HA pairs.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let (pairs, devices): (Rampart_Inventory_V1_ListHaPairsResponse, [String: String]) = try await options.withClient {
                client in
                let pairs: Rampart_Inventory_V1_ListHaPairsResponse = try await options.call(
                    client, InventoryAPI.listHaPairs, Rampart_Inventory_V1_ListHaPairsRequest(),
                    idempotent: true)
                return (pairs, try await deviceNames(client, options))
            }
            if options.output == .json { return try printJSON(pairs) }
            var table = Table("NAME", "PRIMARY", "SECONDARY", "SYNC", "ID")
            for pair in pairs.pairs {
                table.add(
                    pair.name, devices[pair.primaryID] ?? pair.primaryID, devices[pair.secondaryID] ?? pair.secondaryID,
                    pair.syncState.label, pair.id)
            }
            print(table.render())
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an HA pair and its peers.")
        @Argument(help: "Pair name or id.") var pair: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_GetHaPairRequest()
            request.pair = pair
            let response: Rampart_Inventory_V1_HaPairResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.getHaPair, request, idempotent: true)
            }
            try printPair(response, options.output)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a pair, record its sync state, or swap roles.")
        @Argument(help: "Pair name or id.") var pair: String
        @Option(help: "New name.") var name: String?
        @Option(help: "active or suspended.") var sync: String?
        @Flag(name: .customLong("swap-roles"), help: "Exchange primary and secondary.") var swapRoles = false
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_UpdateHaPairRequest()
            request.pair = pair
            request.name = name ?? ""
            if let sync {
                guard let state = Rampart_Inventory_V1_SyncState(label: sync), state != .resumeNeeded else {
                    throw ValidationError("--sync must be active or suspended")
                }
                request.syncState = state
            }
            request.swapRoles = swapRoles
            guard name != nil || sync != nil || swapRoles else { throw ValidationError("name something to change") }
            let response: Rampart_Inventory_V1_HaPairResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.updateHaPair, request)
            }
            try printPair(response, options.output)
        }
    }

    struct Unregister: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Break up an HA pair (the devices stay registered).")
        @Argument(help: "Pair name or id.") var pair: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_DeleteHaPairRequest()
            request.pair = pair
            let response: Rampart_Inventory_V1_DeleteHaPairResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.deleteHaPair, request)
            }
            if options.output == .json { return try printJSON(response) }
            print("unregistered HA pair \(pair) (\(response.pairID))")
        }
    }
}

struct ClustersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clusters", abstract: "Register, list, show, update and unregister clusters.",
        subcommands: [Register.self, List.self, Show.self, Update.self, Unregister.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Form a cluster: one control node, one or more data nodes.")
        @Argument(help: "The cluster's name.") var name: String
        @Option(help: "The control node (name or id).") var control: String
        @Option(help: "A data node (name or id); repeat for each.") var data: [String] = []
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_CreateClusterRequest()
            request.name = name
            request.control = control
            request.data = data
            let response: Rampart_Inventory_V1_ClusterResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.createCluster, request)
            }
            try printCluster(response, options.output)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clusters.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let (clusters, devices): (Rampart_Inventory_V1_ListClustersResponse, [String: String]) =
                try await options.withClient { client in
                    let clusters: Rampart_Inventory_V1_ListClustersResponse = try await options.call(
                        client, InventoryAPI.listClusters, Rampart_Inventory_V1_ListClustersRequest(),
                        idempotent: true)
                    return (clusters, try await deviceNames(client, options))
                }
            if options.output == .json { return try printJSON(clusters) }
            var table = Table("NAME", "CONTROL", "DATA NODES", "ID")
            for cluster in clusters.clusters {
                let control = cluster.nodes.first { $0.role == .clusterControl }.map { devices[$0.deviceID] ?? $0.deviceID }
                let data = cluster.nodes.filter { $0.role == .clusterData }.map { devices[$0.deviceID] ?? $0.deviceID }
                table.add(cluster.name, control ?? "-", data.joined(separator: ","), cluster.id)
            }
            print(table.render())
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a cluster and its nodes.")
        @Argument(help: "Cluster name or id.") var cluster: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_GetClusterRequest()
            request.cluster = cluster
            let response: Rampart_Inventory_V1_ClusterResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.getCluster, request, idempotent: true)
            }
            try printCluster(response, options.output)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a cluster, add or remove data nodes, change the control node.")
        @Argument(help: "Cluster name or id.") var cluster: String
        @Option(help: "New name.") var name: String?
        @Option(name: .customLong("add-data"), help: "A device to add as a data node (repeat).") var addData: [String] = []
        @Option(name: .customLong("remove-data"), help: "A data node to remove (repeat).") var removeData: [String] = []
        @Option(help: "A member to make the control node.") var control: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            guard name != nil || !addData.isEmpty || !removeData.isEmpty || control != nil else {
                throw ValidationError("name something to change")
            }
            var request = Rampart_Inventory_V1_UpdateClusterRequest()
            request.cluster = cluster
            request.name = name ?? ""
            request.addData = addData
            request.removeData = removeData
            request.control = control ?? ""
            let response: Rampart_Inventory_V1_ClusterResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.updateCluster, request)
            }
            try printCluster(response, options.output)
        }
    }

    struct Unregister: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Dissolve a cluster (the devices stay registered).")
        @Argument(help: "Cluster name or id.") var cluster: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Inventory_V1_DeleteClusterRequest()
            request.cluster = cluster
            let response: Rampart_Inventory_V1_DeleteClusterResponse = try await options.withClient {
                try await options.call($0, InventoryAPI.deleteCluster, request)
            }
            if options.output == .json { return try printJSON(response) }
            print("unregistered cluster \(cluster) (\(response.clusterID))")
        }
    }
}

/// Device names by id, for tables that show members.
private func deviceNames(_ client: BusClient, _ options: ClientOptions) async throws -> [String: String] {
    let devices: Rampart_Inventory_V1_ListDevicesResponse = try await options.call(
        client, InventoryAPI.listDevices, Rampart_Inventory_V1_ListDevicesRequest(), idempotent: true)
    return Dictionary(uniqueKeysWithValues: devices.devices.map { ($0.id, $0.name) })
}

private func printMembers(_ devices: [Rampart_Inventory_V1_Device]) {
    var table = Table("MEMBER", "ROLE", "MODEL", "SOFTWARE", "STATE", "ID")
    for device in devices {
        table.add(device.name, device.role.label, device.model, InventoryRules.describe(device.software), stateText(device), device.id)
    }
    print(table.render())
}

private func printPair(_ response: Rampart_Inventory_V1_HaPairResponse, _ output: OutputFormat) throws {
    if output == .json { return try printJSON(response) }
    print("HA pair \(response.pair.name) (\(response.pair.id)), sync \(response.pair.syncState.label)")
    printMembers(response.devices)
}

private func printCluster(_ response: Rampart_Inventory_V1_ClusterResponse, _ output: OutputFormat) throws {
    if output == .json { return try printJSON(response) }
    print("cluster \(response.cluster.name) (\(response.cluster.id)), \(response.cluster.nodes.count) nodes")
    let order = Dictionary(uniqueKeysWithValues: response.cluster.nodes.enumerated().map { ($1.deviceID, $0) })
    printMembers(response.devices.sorted { (order[$0.id] ?? 0) < (order[$1.id] ?? 0) })
}
