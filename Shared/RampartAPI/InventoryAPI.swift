/// The `inventory` service's name and the method names its callers outside inventory's own module use
/// (the bus's device check), so that no caller spells them out.
public enum InventoryAPI {
    /// The service name on the bus.
    public static let serviceName = "inventory"

    /// Method names, "rampart.inventory.v1.Inventory/<Name>".
    public enum Method {
        static let prefix = "rampart.inventory.v1.Inventory/"
        /// One device by name or id.
        public static let getDevice = prefix + "GetDevice"
        /// This installation's manager id (R6).
        public static let getManager = prefix + "GetManager"
        /// The bus refused an appliance claiming a device's identity (service keys only).
        public static let reportIdentityConflict = prefix + "ReportIdentityConflict"
    }
}
