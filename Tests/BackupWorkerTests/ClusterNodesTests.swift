import RampartProto
import Testing

@testable import BackupWorkerService

@Suite("B9: a cluster is backed up only with every node registered (pure; planning and run alike)")
struct ClusterNodesTests {
    static func cluster(nodes: [(String, Rampart_Inventory_V1_Role)], registered: Set<String>) -> Rampart_Inventory_V1_ClusterResponse {
        var response = Rampart_Inventory_V1_ClusterResponse()
        response.cluster.name = "cl"
        for (id, role) in nodes {
            var node = Rampart_Inventory_V1_ClusterNode()
            node.deviceID = id
            response.cluster.nodes.append(node)
            if registered.contains(id) {
                var device = Rampart_Inventory_V1_Device()
                device.id = id
                device.role = role
                response.devices.append(device)
            }
        }
        return response
    }

    static let nodes: [(String, Rampart_Inventory_V1_Role)] = [("d1", .clusterData), ("c", .clusterControl), ("d2", .clusterData)]

    @Test("B9: every node registered: the control node first, then the data nodes")
    func allRegistered() throws {
        let (control, data) = try Planner.clusterNodes(Self.cluster(nodes: Self.nodes, registered: ["c", "d1", "d2"])).get()
        #expect(control.id == "c" && data.map(\.id) == ["d1", "d2"])
    }

    @Test("B9: a node not registered (or no control node) refuses the cluster, FAILED_PRECONDITION, naming the rule")
    func refused() {
        for registered: Set<String> in [["c", "d1"], ["d1", "d2"], []] {
            let result = Planner.clusterNodes(Self.cluster(nodes: Self.nodes, registered: registered))
            guard case .failure(let error) = result else {
                Issue.record("\(registered) was not refused")
                continue
            }
            #expect(error.code == .failedPrecondition && error.message.contains("rule B9"), "\(error)")
        }
    }
}
