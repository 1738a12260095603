import Foundation
import RampartBus
import RampartProto
import RampartRPC
import Testing

@testable import InventoryService

typealias Device = Rampart_Inventory_V1_Device

/// A device every rule accepts: a physical FPR-3120 on 7.4.1 patch 2.
func goodDevice(id: String = "", name: String = "fw-edge-01") -> Device {
    var device = Device()
    device.id = id
    device.name = name
    device.serial = "JAD24190ABC"
    device.model = "FPR-3120"
    device.platform = .physical
    device.software.version = "7.4.1"
    device.software.patch = 2
    device.networkModules = 2
    var copper = Rampart_Inventory_V1_InterfaceGroup()
    copper.type = "1GbE-RJ45"
    copper.count = 8
    var fibre = Rampart_Inventory_V1_InterfaceGroup()
    fibre.type = "10GbE-SFP+"
    fibre.count = 8
    device.interfaces = [copper, fibre]
    device.managementIp = "192.0.2.10"
    device.managerID = "manager-1"
    return device
}

/// Runs `body` and returns the RPCError it threw, recording an issue when it threw nothing or something else.
func rpcError(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> RPCError? {
    do {
        try body()
        Issue.record("expected an RPCError, nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        Issue.record("expected an RPCError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
