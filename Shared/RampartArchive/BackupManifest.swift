import Crypto
import Foundation
import RampartBasics

/// `manifest.json`, the first member of every device backup (docs/rules.md#archives): who the appliance is, what it
/// runs (version and patch, B5), where it stands (role, HA pair, cluster), how it reaches its manager
/// (management IP, manager id, B11), when the backup was made, and a SHA-256 per member.
///
/// JSON keys are snake_case and sorted, so the same manifest always encodes to the same bytes.
public struct BackupManifest: Codable, Sendable, Equatable {
    /// The format this code writes and reads.
    public static let currentFormatVersion = 1
    /// The member's path inside the archive.
    public static let fileName = "manifest.json"

    /// Physical interfaces of one type.
    public struct InterfaceGroup: Codable, Sendable, Equatable {
        /// e.g. "1GbE-RJ45".
        public var type: String
        /// How many.
        public var count: Int

        /// `count` interfaces of `type`.
        public init(type: String, count: Int) {
            self.type = type
            self.count = count
        }
    }

    /// Software version and patch level (B5): "7.4.1" patch 2.
    public struct Software: Codable, Sendable, Equatable {
        /// Dotted version without the patch ("7.4.1").
        public var version: String
        /// Patch level; 0 = none.
        public var patch: Int

        /// Version `version`, patch `patch`.
        public init(version: String, patch: Int) {
            self.version = version
            self.patch = patch
        }
    }

    /// One member of the archive and its checksum.
    public struct FileEntry: Codable, Sendable, Equatable {
        /// Path inside the archive.
        public var path: String
        /// Size in bytes.
        public var size: Int
        /// SHA-256 of the contents, lower-case hex.
        public var sha256: String

        /// An entry for `path`.
        public init(path: String, size: Int, sha256: String) {
            self.path = path
            self.size = size
            self.sha256 = sha256
        }
    }

    /// Format of this manifest (1).
    public var formatVersion: Int
    /// The device's id in inventory (its manager registration).
    public var deviceId: String
    /// The device's name.
    public var deviceName: String
    /// Serial number: with the id, what identifies the appliance (B11, R5).
    public var serial: String
    /// The manager the device is registered with (R6).
    public var managerId: String
    /// Hardware model, e.g. "FPR-3120".
    public var model: String
    /// "physical", "native-instance", "container-instance" or "virtual".
    public var platform: String
    /// "vmware", "kvm", ... for virtual devices, else "".
    public var hypervisor: String
    /// Number of network modules (R3).
    public var networkModules: Int
    /// Physical interfaces by type and count (R3).
    public var interfaces: [InterfaceGroup]
    /// Software version and patch (B5, R4).
    public var software: Software
    /// What the device is in its deployment; encoded as its label ("standalone", "ha-primary",
    /// "ha-secondary", "cluster-control", "cluster-data").
    public var role: BackupRole
    /// The HA pair's id, or "".
    public var haPairId: String
    /// The cluster's id, or "".
    public var clusterId: String
    /// Management IP address (B11).
    public var managementIp: String
    /// Creation time, ISO-8601 UTC ("2025-01-31T12:00:00Z").
    public var createdAt: String
    /// The backup job that made it, or "".
    public var jobId: String
    /// Every member but manifest.json, in archive order.
    public var files: [FileEntry]

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version"
        case deviceId = "device_id"
        case deviceName = "device_name"
        case serial
        case managerId = "manager_id"
        case model
        case platform
        case hypervisor
        case networkModules = "network_modules"
        case interfaces
        case software
        case role
        case haPairId = "ha_pair_id"
        case clusterId = "cluster_id"
        case managementIp = "management_ip"
        case createdAt = "created_at"
        case jobId = "job_id"
        case files
    }

    /// A manifest; `files` is usually left empty and filled by `BackupArchive.build`.
    public init(
        formatVersion: Int = BackupManifest.currentFormatVersion, deviceId: String, deviceName: String, serial: String,
        managerId: String, model: String, platform: String, hypervisor: String = "", networkModules: Int = 0,
        interfaces: [InterfaceGroup] = [], software: Software, role: BackupRole, haPairId: String = "",
        clusterId: String = "", managementIp: String, createdAt: String, jobId: String = "", files: [FileEntry] = []
    ) {
        self.formatVersion = formatVersion
        self.deviceId = deviceId
        self.deviceName = deviceName
        self.serial = serial
        self.managerId = managerId
        self.model = model
        self.platform = platform
        self.hypervisor = hypervisor
        self.networkModules = networkModules
        self.interfaces = interfaces
        self.software = software
        self.role = role
        self.haPairId = haPairId
        self.clusterId = clusterId
        self.managementIp = managementIp
        self.createdAt = createdAt
        self.jobId = jobId
        self.files = files
    }

    /// The manifest as stored: pretty-printed JSON, sorted keys, a final newline.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        return data
    }

    /// Reads a manifest; throws `ArchiveError.manifest` when it is not one.
    public static func decode(_ data: Data) throws -> BackupManifest {
        do {
            return try JSONDecoder().decode(BackupManifest.self, from: data)
        } catch {
            throw ArchiveError(.manifest, member: fileName, "manifest.json cannot be read: \(error)")
        }
    }

    /// `date` as the manifest writes it: ISO-8601, UTC, whole seconds ("2025-01-31T12:00:00Z").
    public static func timestamp(_ date: Date) -> String {
        let parts = UTCParts(date)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ", parts.year, parts.month, parts.day, parts.hour, parts.minute,
            parts.second)
    }

    /// The date in `createdAt`, when it is a valid timestamp.
    public var createdDate: Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: createdAt)
    }
}

/// Lower-case hex SHA-256 of `data`.
public func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).hexString
}

/// A date's UTC calendar fields, without Foundation formatters (thread-safe, locale-free).
struct UTCParts {
    var year, month, day, hour, minute, second: Int

    init(_ date: Date) {
        var seconds = time_t(floor(date.timeIntervalSince1970))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        year = Int(parts.tm_year) + 1900
        month = Int(parts.tm_mon) + 1
        day = Int(parts.tm_mday)
        hour = Int(parts.tm_hour)
        minute = Int(parts.tm_min)
        second = Int(parts.tm_sec)
    }

    init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second) = (year, month, day, hour, minute, second)
    }

    /// The date these fields describe, when they are a valid UTC time.
    var date: Date? {
        guard (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day), (0...23).contains(hour),
            (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        // Reject dates that timegm normalised (February 30th).
        let back = UTCParts(date)
        guard back.day == day, back.month == month else { return nil }
        return date
    }
}
