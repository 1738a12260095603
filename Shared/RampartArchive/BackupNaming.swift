import Foundation

/// What a device is in its deployment, as the manifest and file names say it.
public enum BackupRole: String, Sendable, CaseIterable, Codable {
    /// A device on its own.
    case standalone = "standalone"
    /// The primary peer of an HA pair.
    case haPrimary = "ha-primary"
    /// The secondary peer of an HA pair.
    case haSecondary = "ha-secondary"
    /// A cluster's control node.
    case clusterControl = "cluster-control"
    /// A cluster's data node.
    case clusterData = "cluster-data"

    /// The word that marks the role in a file name ("primary", "control"), or nil for standalone.
    public var fileNameTag: String? {
        switch self {
        case .standalone: nil
        case .haPrimary: "primary"
        case .haSecondary: "secondary"
        case .clusterControl: "control"
        case .clusterData: "data"
        }
    }
}

/// Backup file names (docs/rules.md#archives, B7, B8): `<device>_<timestamp>.tar` for a standalone device,
/// `<device>_primary_<timestamp>.tar` / `_secondary_` for HA peers, `<node>_control_<timestamp>.tar` /
/// `_data_` for cluster nodes, and `<cluster>.<timestamp>.tar.gz` for a cluster bundle; the timestamp is
/// `yyyyMMdd'T'HHmmss'Z'` in UTC.
///
/// Device names may hold `_`, so a standalone device named `fw_primary` gives a name that reads as the
/// primary peer `fw`; the manifest inside, not the file name, is authoritative.
public enum BackupNaming {
    /// A device backup's file name, taken apart.
    public struct DeviceFile: Sendable, Equatable {
        /// The device (node) name.
        public var deviceName: String
        /// The role its name carries.
        public var role: BackupRole
        /// When it was made (whole seconds).
        public var date: Date
    }

    /// A cluster bundle's file name, taken apart.
    public struct BundleFile: Sendable, Equatable {
        /// The cluster's name.
        public var clusterName: String
        /// When it was made (whole seconds).
        public var date: Date
    }

    /// `date` as file names write it: "20250131T120000Z".
    public static func timestamp(_ date: Date) -> String {
        let parts = UTCParts(date)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ", parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second)
    }

    /// The date of a file-name timestamp ("20250131T120000Z"), or nil.
    public static func date(fromTimestamp text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            guard bytes[range].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
            return Int(String(decoding: bytes[range], as: UTF8.self))
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8), let hour = number(9..<11),
            let minute = number(11..<13), let second = number(13..<15)
        else { return nil }
        return UTCParts(year: year, month: month, day: day, hour: hour, minute: minute, second: second).date
    }

    /// The file name of a device backup: `<device>[_<role>]_<timestamp>.tar`.
    public static func deviceFile(deviceName: String, role: BackupRole, date: Date) -> String {
        let tag = role.fileNameTag.map { "_\($0)" } ?? ""
        return "\(deviceName)\(tag)_\(timestamp(date)).tar"
    }

    /// The file name of a cluster bundle: `<cluster>.<timestamp>.tar.gz`.
    public static func clusterBundle(clusterName: String, date: Date) -> String {
        "\(clusterName).\(timestamp(date)).tar.gz"
    }

    /// Takes a device backup's file name apart (any folder in front is ignored). A name without a role
    /// word is a standalone device's. Throws `ArchiveError.badName` when it does not follow these names.
    public static func parseDeviceFile(_ fileName: String) throws -> DeviceFile {
        let base = fileName.split(separator: "/").last.map(String.init) ?? fileName
        guard base.hasSuffix(".tar"), !base.hasSuffix(".tar.gz") else {
            throw ArchiveError(.badName, member: base, "'\(base)' is not a device backup file name (<device>_<timestamp>.tar)")
        }
        var parts = base.dropLast(4).split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, let stamp = parts.popLast(), let date = date(fromTimestamp: stamp) else {
            throw ArchiveError(
                .badName, member: base, "'\(base)' does not end with _<timestamp>.tar (timestamp like 20250131T120000Z)")
        }
        var role = BackupRole.standalone
        if parts.count >= 2, let tagged = BackupRole.allCases.first(where: { $0.fileNameTag == parts.last }) {
            role = tagged
            parts.removeLast()
        }
        let name = parts.joined(separator: "_")
        guard !name.isEmpty else {
            throw ArchiveError(.badName, member: base, "'\(base)' has no device name")
        }
        return DeviceFile(deviceName: name, role: role, date: date)
    }

    /// Takes a cluster bundle's file name apart. Throws `ArchiveError.badName` when it does not follow these names.
    public static func parseClusterBundle(_ fileName: String) throws -> BundleFile {
        let base = fileName.split(separator: "/").last.map(String.init) ?? fileName
        guard base.hasSuffix(".tar.gz") else {
            throw ArchiveError(.badName, member: base, "'\(base)' is not a cluster bundle name (<cluster>.<timestamp>.tar.gz)")
        }
        let stem = base.dropLast(7)
        guard let dot = stem.lastIndex(of: "."), let date = date(fromTimestamp: String(stem[stem.index(after: dot)...])),
            dot > stem.startIndex
        else {
            throw ArchiveError(.badName, member: base, "'\(base)' does not follow <cluster>.<timestamp>.tar.gz")
        }
        return BundleFile(clusterName: String(stem[..<dot]), date: date)
    }
}
