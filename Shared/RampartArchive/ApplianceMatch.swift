/// R3 and R4, decided once for the device agent (before it asks for a lease) and the restore
/// coordinator (before it grants one): a backup restores only onto an appliance of the same model,
/// number of network modules and physical interfaces by type (R3), running the same software version
/// and patch (R4). Every difference is one line naming both values.
public enum ApplianceMatch {
    /// What R3 and R4 compare, on one side.
    public struct Facts: Sendable, Equatable {
        public var model: String
        public var networkModules: Int
        /// Interfaces by type: groups of one type added up, empty groups left out (a group of 0
        /// interfaces is the same as none).
        public var interfaces: [String: Int]
        public var version: String
        public var patch: Int

        public init(model: String, networkModules: Int, interfaces: [(type: String, count: Int)], version: String, patch: Int) {
            self.model = model
            self.networkModules = networkModules
            var counts: [String: Int] = [:]
            for (type, count) in interfaces where count > 0 { counts[type, default: 0] += count }
            self.interfaces = counts
            self.version = version
            self.patch = patch
        }

        /// The facts of the appliance a manifest describes.
        public init(_ manifest: BackupManifest) {
            self.init(
                model: manifest.model, networkModules: manifest.networkModules,
                interfaces: manifest.interfaces.map { ($0.type, $0.count) }, version: manifest.software.version,
                patch: manifest.software.patch)
        }

        /// "10GbE-SFP+=4, 1GbE-RJ45=8", or "none".
        public var interfacesText: String {
            interfaces.isEmpty ? "none" : interfaces.keys.sorted().map { "\($0)=\(interfaces[$0]!)" }.joined(separator: ", ")
        }
    }

    /// What differs in hardware (R3) between `device` — called `subject` in the lines ("this device",
    /// "the replacement") — and the backup's appliance; empty when they match.
    public static func hardware(_ device: Facts, backup: Facts, subject: String) -> [String] {
        var differences: [String] = []
        if device.model != backup.model {
            differences.append("model: \(subject) is a \(device.model), the backup is of a \(backup.model) (R3)")
        }
        if device.networkModules != backup.networkModules {
            differences.append(
                "network modules: \(subject) has \(device.networkModules), the backup's device had \(backup.networkModules) (R3)")
        }
        for type in Set(device.interfaces.keys).union(backup.interfaces.keys).sorted() {
            switch (device.interfaces[type], backup.interfaces[type]) {
            case (let here?, nil):
                differences.append("interfaces: \(subject) has \(here) \(type), the backup's device had none (R3)")
            case (nil, let there?):
                differences.append("interfaces: the backup's device had \(there) \(type), \(subject) has none (R3)")
            case (let here?, let there?) where here != there:
                differences.append("interfaces: \(subject) has \(here) \(type), the backup's device had \(there) (R3)")
            default:
                break
            }
        }
        return differences
    }

    /// What differs in software (R4): the version, else the patch; empty when they match.
    public static func software(_ device: Facts, backup: Facts, subject: String) -> [String] {
        let running = "\(subject) runs \(device.version) patch \(device.patch), the backup was taken on \(backup.version) patch \(backup.patch) (R4)"
        if device.version != backup.version { return ["software version: " + running] }
        if device.patch != backup.patch { return ["patch: " + running] }
        return []
    }
}
