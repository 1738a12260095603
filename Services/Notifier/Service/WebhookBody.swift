import Foundation
import RampartJSON
import RampartProto
import SwiftProtobuf

/// The JSON a hook is POSTed for one event (docs/notifications.md): the event's facts and its
/// message as the CLI's JSON spells it (`rampart events tail --output json`, `OperatorJSON`).
public enum WebhookBody {
    /// The messages events carry, by protobuf name, so that `message` is the message and not its bytes.
    static let messageTypes: [String: any SwiftProtobuf.Message.Type] = {
        let types: [any SwiftProtobuf.Message.Type] = [
            Rampart_Inventory_V1_Device.self, Rampart_Inventory_V1_HaPair.self, Rampart_Inventory_V1_Cluster.self,
            Rampart_Storage_V1_ObjectInfo.self, Rampart_Restore_V1_Lease.self,
        ]
        return Dictionary(uniqueKeysWithValues: types.map { ($0.protoMessageName, $0) })
    }()

    /// The body for `event`, keys sorted: `topic`, `seq`, `subject`, `source`, `time` (RFC 3339),
    /// `time_unix_ms`, `attributes`, `data_type`, and `message` (null when the event carries none; the
    /// bytes in `data`, base64, when the notifier does not know its type).
    public static func json(_ event: Rampart_Bus_V1_Event) -> Data {
        var object: [String: Any] = [
            "topic": event.topic, "seq": event.seq, "subject": event.subject, "source": event.source,
            "time_unix_ms": event.timeUnixMs, "time": rfc3339(event.timeUnixMs), "attributes": event.attributes,
            "data_type": event.dataType, "message": NSNull(),
        ]
        if !event.data.isEmpty || !event.dataType.isEmpty {
            if let type = messageTypes[event.dataType], let message = try? type.init(serializedBytes: event.data),
                let text = try? OperatorJSON.encode(message),
                let decoded = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            {
                object["message"] = decoded
            } else {
                object["data"] = event.data.base64EncodedString()
            }
        }
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return data ?? Data("{}".utf8)
    }

    /// Milliseconds since the epoch in RFC 3339, UTC, with milliseconds.
    static func rfc3339(_ unixMs: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(unixMs) / 1000))
    }
}
