import Logging
import RampartAPI
import RampartBus
import RampartProto
import RampartRPC

/// The broker's check of a device registration (docs/security.md, "One key, one device"; rule P8): asks
/// inventory, over the bus inside this process, for the device the service names, and admits the
/// registration only when that device exists, is the one the registering key was made for (its name),
/// and has the serial the box claims. Inventory down or slow: refused for now — the agent asks again
/// with backoff — rather than admitting a registration nobody could check.
///
/// A refused claim on a device inventory has (another device's key, or a serial it no longer holds for
/// it) is an identity conflict: recorded on the device (`rampart devices show`) with the event
/// `inventory.device.identity-conflict`.
struct DeviceIdentityCheck: Sendable {
    let client: BusClient
    let logger: Logger

    func check(_ claim: Broker.DeviceClaim) async -> String? {
        var request = Rampart_Inventory_V1_GetDeviceRequest()
        request.device = claim.deviceId
        let device: Rampart_Inventory_V1_Device
        do {
            let response: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.getDevice, request, timeout: .seconds(5),
                idempotent: true)
            device = response.device
        } catch let error as RPCError where error.code == .notFound {
            return "no device with id \(claim.deviceId) is registered in inventory"
        } catch {
            return "inventory cannot confirm device \(claim.deviceId) now (\(error)); the agent will ask again"
        }
        let refusal = claim.refusal(deviceId: device.id, name: device.name, serial: device.serial)
        if let refusal, device.id == claim.deviceId, !claim.serial.isEmpty {
            await report(claim, device: device, reason: refusal)
        }
        return refusal
    }

    /// Records the conflict on the device; a failure is logged, never blocks the refusal.
    private func report(_ claim: Broker.DeviceClaim, device: Rampart_Inventory_V1_Device, reason: String) async {
        var conflict = Rampart_Inventory_V1_ReportIdentityConflictRequest()
        conflict.device = device.id
        conflict.serial = claim.serial
        conflict.keyName = claim.keyName ?? ""
        conflict.reason = reason
        do {
            let _: Rampart_Inventory_V1_DeviceResponse = try await client.call(
                InventoryAPI.reportIdentityConflict, conflict,
                timeout: .seconds(5), idempotent: true)
        } catch {
            logger.warning(
                "identity conflict not recorded in inventory", metadata: ["device": "\(device.name)", "error": "\(error)"])
        }
    }
}
