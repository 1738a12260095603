import Foundation
import Postgres
import RampartBasics
import RampartProto

/// The retention policy in force, kept in `backup.settings` so that every worker prunes by the same one
/// and operators see and change it with the CLI (`rampart retention show|set`).
enum RetentionStore {
    static let setting = "retention_policy"

    /// The policy as stored, with who set it.
    struct Stored: Codable, Equatable {
        var keepLast: Int
        var keepDaily: Int
        var keepWeekly: Int
        var keepMonthly: Int
        var setBy: String

        init(_ policy: RetentionPolicy, setBy: String) {
            keepLast = policy.keepLast
            keepDaily = policy.keepDaily
            keepWeekly = policy.keepWeekly
            keepMonthly = policy.keepMonthly
            self.setBy = setBy
        }

        var policy: RetentionPolicy {
            get throws {
                try RetentionPolicy(keepLast: keepLast, keepDaily: keepDaily, keepWeekly: keepWeekly, keepMonthly: keepMonthly)
            }
        }
    }

    /// Stores `policy`: always when `replace` (an operator's change, or a worker started with --keep-*
    /// flags), otherwise only when none is stored yet (the installation's first worker).
    static func store(_ policy: RetentionPolicy, setBy: String, replace: Bool, on connection: PostgresConnection) throws {
        let value = String(decoding: try JSONEncoder().encode(Stored(policy, setBy: setBy)), as: UTF8.self)
        if replace {
            try connection.execute(
                """
                INSERT INTO backup.settings (name, value) VALUES (\(setting), \(value))
                ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
                """)
        } else {
            try connection.execute(
                "INSERT INTO backup.settings (name, value) VALUES (\(setting), \(value)) ON CONFLICT (name) DO NOTHING")
        }
    }

    /// The stored policy, who set it and when; nil before any worker stored one.
    static func current(on connection: PostgresConnection) throws -> (policy: RetentionPolicy, setBy: String, at: Date)? {
        guard let row = try connection.query(
            "SELECT value, updated_at FROM backup.settings WHERE name = \(setting)").first
        else { return nil }
        let stored = try JSONDecoder().decode(Stored.self, from: Data(try row.decode("value", as: String.self).utf8))
        return (try stored.policy, stored.setBy, try row.decode("updated_at", as: Date.self))
    }

    /// The policy in force (the stored one, else `fallback`) as the API gives it.
    static func response(fallback: RetentionPolicy, on connection: PostgresConnection) throws -> Rampart_Backup_V1_RetentionPolicyResponse {
        var response = Rampart_Backup_V1_RetentionPolicyResponse()
        let current = try self.current(on: connection)
        response.policy = message(current?.policy ?? fallback)
        response.setBy = current?.setBy ?? "default"
        response.setUnixMs = current?.at.unixMillis ?? 0
        return response
    }

    static func message(_ policy: RetentionPolicy) -> Rampart_Backup_V1_RetentionPolicy {
        var message = Rampart_Backup_V1_RetentionPolicy()
        message.keepLast = UInt32(policy.keepLast)
        message.keepDaily = UInt32(policy.keepDaily)
        message.keepWeekly = UInt32(policy.keepWeekly)
        message.keepMonthly = UInt32(policy.keepMonthly)
        return message
    }
}
