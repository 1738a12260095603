import Logging
import Postgres
import RampartAPI
import RampartBus
import RampartProto
import RampartTesting
import Testing

@testable import InventoryService

@Suite("Inventory: the installation's manager, handlers called in-process (R6)")
struct ManagerHandlerTests {
    @Test(
        "R6: GetManager answers the installation's own manager id, the same at every call, and a device registered without one gets it; devices may not read it (P7)"
    )
    func getManager() async throws {
        let logger = Logger(label: "manager-handler-tests")
        let connectionString = try await onOwnThread {
            let connectionString = try TestDatabase.create()
            let connection = try PostgresConnection(connectionString: connectionString)
            try InventoryService.migrate(connection: connection, logger: logger)
            return connectionString
        }
        let pool = PostgresPool(connectionString: connectionString, size: 2, logger: logger)
        let tester = RouterTester(InventoryService(pool: pool).router())
        let getManager = Rampart_Inventory_V1_GetManagerRequest()

        let manager: Rampart_Inventory_V1_ManagerResponse = try await tester.call(
            InventoryAPI.getManager, getManager, as: .viewer)
        #expect(manager.managerID.hasPrefix("rampart-"))
        #expect(manager.createdUnixMs > 0)
        let again: Rampart_Inventory_V1_ManagerResponse = try await tester.call(
            InventoryAPI.getManager, getManager, as: .service, name: "restore-coordinator")
        #expect(again == manager)

        // A device registering itself without a manager id is given the installation's.
        var device = goodDevice()
        device.managerID = ""
        var register = Rampart_Inventory_V1_RegisterDeviceRequest()
        register.device = device
        let registered: Rampart_Inventory_V1_DeviceResponse = try await tester.call(
            InventoryAPI.registerDevice, register, as: .device, name: device.name)
        #expect(registered.device.managerID == manager.managerID)
        #expect(tester.audited.map(\.subject) == [registered.device.id])

        // Reading is for everyone but devices: refused before the handler, and the refusal recorded.
        let refused = await tester.failure(InventoryAPI.getManager, getManager, as: .device, name: device.name)
        #expect(refused?.code == .permissionDenied)
        #expect(tester.audited.map(\.outcome) == [.ok, .permissionDenied])
        await pool.close()
    }
}
