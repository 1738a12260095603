import Foundation

/// The CSV file of exported backup links (L2): RFC 4180, CRLF line ends, dates in ISO 8601 UTC.
public enum BackupLinksCSV {
    /// One exported backup file.
    public struct Row: Sendable, Hashable {
        /// The device's name.
        public var deviceName: String
        /// The device's id.
        public var deviceId: String
        /// Its HA role ("primary", "secondary", "standalone", …).
        public var role: String
        /// The backup file's name.
        public var fileName: String
        /// The file's size in bytes.
        public var size: UInt64
        /// The file's SHA-256 in hex.
        public var sha256: String
        /// When the backup was taken.
        public var createdAt: Date
        /// The signed download URL.
        public var url: String
        /// When the URL stops working.
        public var expiresAt: Date

        /// Makes a row.
        public init(
            deviceName: String, deviceId: String, role: String, fileName: String, size: UInt64, sha256: String,
            createdAt: Date, url: String, expiresAt: Date
        ) {
            self.deviceName = deviceName
            self.deviceId = deviceId
            self.role = role
            self.fileName = fileName
            self.size = size
            self.sha256 = sha256
            self.createdAt = createdAt
            self.url = url
            self.expiresAt = expiresAt
        }
    }

    /// The column names, in order.
    public static let header = [
        "device_name", "device_id", "role", "file_name", "size", "sha256", "created_at", "url", "expires_at",
    ]

    /// The whole file: the header line, then one line per row, each ending in CRLF.
    public static func render(_ rows: [Row]) -> String {
        var out = line(header)
        for row in rows {
            out += line([
                row.deviceName, row.deviceId, row.role, row.fileName, String(row.size), row.sha256,
                timestamp(row.createdAt), row.url, timestamp(row.expiresAt),
            ])
        }
        return out
    }

    /// One field, quoted (with doubled quotes) when it holds a comma, quote, CR or LF.
    public static func field(_ value: String) -> String {
        let needsQuotes = value.unicodeScalars.contains { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" }
        guard needsQuotes else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `date` as ISO 8601 UTC to the second, e.g. "2026-11-27T13:11:57Z" (fractions dropped).
    public static func timestamp(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
            + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))Z"
    }

    private static func line(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",") + "\r\n"
    }
}
