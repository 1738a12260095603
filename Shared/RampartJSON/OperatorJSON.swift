import Foundation
import RampartProto
import SwiftProtobuf

/// The JSON the `rampart` CLI prints for scripts (`--output json`): protobuf's JSON mapping (proto field
/// names, 64-bit integers as numbers) with three changes an operator's script needs:
/// - every field is written, also at its default value (`false`, `0`, `""`, `[]`, `{}`; an unset
///   message field is `null`), so a script can read `.connected` without knowing protobuf's rules;
/// - enum values are spelt as the tables spell them (`succeeded`, `ha-primary`, `resume-needed`;
///   `unspecified` for the zero value; the bus's status codes keep their names, `NOT_FOUND`);
/// - beside every `X_unix_ms` time there is `X`, the same instant in RFC 3339 with its zone
///   (`2026-12-07T15:46:20.123Z`), or `null` when it is 0 ("never").
/// `decode` reads such a document back into the message (it undoes the three changes), so the
/// format loses nothing.
public enum OperatorJSON {
    /// `message` as one line of operator JSON, keys sorted.
    public static func encode(_ message: some SwiftProtobuf.Message) throws -> String {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        options.alwaysPrintInt64sAsNumbers = true
        let json = try message.jsonUTF8Data(options: options)
        let object = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])
        let schema = Schema.shared
        let filled = schema.fill(object, message: "." + type(of: message).protoMessageName)
        let data = try JSONSerialization.data(withJSONObject: filled, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }

    /// The message of type `M` written as operator JSON in `text` (or as plain protobuf JSON).
    public static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, from text: String) throws -> M {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        let plain = Schema.shared.unfill(object, message: "." + M.protoMessageName)
        let data = try JSONSerialization.data(withJSONObject: plain, options: [.fragmentsAllowed])
        return try M(jsonUTF8Data: data)
    }

    /// How a value of the enum `fullName` (e.g. `rampart.backup.v1.TaskState`) named `valueName` in
    /// the .proto file is spelt in tables and in operator JSON.
    public static func label(enum fullName: String, value valueName: String) -> String {
        if fullName == "rampart.bus.v1.StatusCode" { return valueName }
        if valueName.hasSuffix("_UNSPECIFIED") { return "unspecified" }
        if let special = specialLabels[fullName]?[valueName] { return special }
        var label = valueName.lowercased().replacingOccurrences(of: "_", with: "-")
        if let prefix = strippedPrefixes[fullName], label.hasPrefix(prefix) { label.removeFirst(prefix.count) }
        return label
    }

    /// Value names whose table spelling is not the name in kebab case.
    static let specialLabels: [String: [String: String]] = ["rampart.backup.v1.TargetKind": ["ALL_DEVICES": "all"]]
    /// Enums whose value names repeat a word of the enum's name (`TASK_RUNNING` is `running`, `ROLE_ADMIN`
    /// is `admin` as keys carry it).
    static let strippedPrefixes: [String: String] = [
        "rampart.backup.v1.TaskState": "task-", "rampart.bus.v1.Role": "role-", "rampart.storage.v1.FileChange": "file-change-",
    ]

    /// The names of every enum in the schema with the names of its values, for tests and docs.
    public static var enums: [String: [(name: String, number: Int32)]] {
        Schema.shared.enums.mapValues { $0.value.map { ($0.name, $0.number) } }
            .reduce(into: [:]) { result, entry in result[String(entry.key.dropFirst())] = entry.value }
    }
}

/// Every message and enum of `RampartDescriptorSet`, by full name with a leading dot.
struct Schema: Sendable {
    static let shared = Schema()

    let messages: [String: Google_Protobuf_DescriptorProto]
    let enums: [String: Google_Protobuf_EnumDescriptorProto]

    init() {
        let bytes = Data(base64Encoded: RampartDescriptorSet.base64) ?? Data()
        // The set is generated with the code: a set that does not decode is a build defect.
        let set = (try? Google_Protobuf_FileDescriptorSet(serializedBytes: bytes)) ?? Google_Protobuf_FileDescriptorSet()
        var messages: [String: Google_Protobuf_DescriptorProto] = [:]
        var enums: [String: Google_Protobuf_EnumDescriptorProto] = [:]
        func add(_ message: Google_Protobuf_DescriptorProto, scope: String) {
            let name = scope + "." + message.name
            messages[name] = message
            for nested in message.nestedType { add(nested, scope: name) }
            for item in message.enumType { enums[name + "." + item.name] = item }
        }
        for file in set.file {
            let scope = file.package.isEmpty ? "" : "." + file.package
            for message in file.messageType { add(message, scope: scope) }
            for item in file.enumType { enums[scope + "." + item.name] = item }
        }
        self.messages = messages
        self.enums = enums
    }

    typealias Field = Google_Protobuf_FieldDescriptorProto

    /// `object` (protobuf JSON of the message `name`) with every field present.
    func fill(_ object: Any, message name: String) -> Any {
        guard var dict = object as? [String: Any], let message = messages[name] else { return object }
        for field in message.field {
            let key = field.name
            if let value = dict[key] {
                dict[key] = fillValue(value, field: field)
            } else if let value = defaultValue(field) {
                dict[key] = value
            }
            if let stem = timeStem(field), message.field.allSatisfy({ $0.name != stem }) {
                let ms = (dict[key] as? NSNumber)?.int64Value ?? 0
                dict[stem] = ms == 0 ? NSNull() : Self.rfc3339(ms)
            }
        }
        return dict
    }

    /// `object` in operator JSON back to protobuf JSON.
    func unfill(_ object: Any, message name: String) -> Any {
        guard var dict = object as? [String: Any], let message = messages[name] else { return object }
        for field in message.field {
            if let stem = timeStem(field), message.field.allSatisfy({ $0.name != stem }) { dict[stem] = nil }
            guard let value = dict[field.name] else { continue }
            if value is NSNull { dict[field.name] = nil; continue }
            dict[field.name] = mapValue(value, field: field, fill: false)
        }
        return dict
    }

    private func fillValue(_ value: Any, field: Field) -> Any { mapValue(value, field: field, fill: true) }

    /// Applies fill or unfill to a field's value: messages recursively, enums by label.
    private func mapValue(_ value: Any, field: Field, fill: Bool) -> Any {
        if let entry = mapEntry(field) {
            guard let dict = value as? [String: Any], entry.field.count == 2 else { return value }
            return dict.mapValues { mapSingle($0, field: entry.field[1], fill: fill) }
        }
        if field.label == .repeated, let array = value as? [Any] {
            return array.map { mapSingle($0, field: field, fill: fill) }
        }
        return mapSingle(value, field: field, fill: fill)
    }

    private func mapSingle(_ value: Any, field: Field, fill: Bool) -> Any {
        switch field.type {
        case .message where !field.typeName.hasPrefix(".google.protobuf."):
            return fill ? self.fill(value, message: field.typeName) : unfill(value, message: field.typeName)
        case .enum:
            guard let values = enums[field.typeName]?.value else { return value }
            let enumName = String(field.typeName.dropFirst())
            if fill {
                guard let name = value as? String else { return value }  // an unknown number stays a number
                return OperatorJSON.label(enum: enumName, value: name)
            }
            guard let label = value as? String else { return value }
            return values.first { OperatorJSON.label(enum: enumName, value: $0.name) == label }?.name ?? label
        default:
            return value
        }
    }

    /// The value protobuf's JSON leaves out for `field`, or nil for members of a oneof (an unset
    /// oneof has no member to show).
    private func defaultValue(_ field: Field) -> Any? {
        if field.proto3Optional { return NSNull() }
        if field.hasOneofIndex { return nil }
        if mapEntry(field) != nil { return [String: Any]() }
        if field.label == .repeated { return [Any]() }
        switch field.type {
        case .bool: return false
        case .string, .bytes: return ""
        case .message, .group: return NSNull()
        case .enum:
            guard let first = enums[field.typeName]?.value.first(where: { $0.number == 0 }) else { return 0 }
            return OperatorJSON.label(enum: String(field.typeName.dropFirst()), value: first.name)
        case .double, .float: return 0.0
        default: return 0
        }
    }

    /// The entry type of a map field, or nil.
    private func mapEntry(_ field: Field) -> Google_Protobuf_DescriptorProto? {
        guard field.label == .repeated, field.type == .message, let entry = messages[field.typeName],
            entry.options.mapEntry
        else { return nil }
        return entry
    }

    /// "created" for the int64 field `created_unix_ms`, else nil.
    private func timeStem(_ field: Field) -> String? {
        guard field.label != .repeated, field.type == .int64, field.name.hasSuffix("_unix_ms") else { return nil }
        return String(field.name.dropLast("_unix_ms".count))
    }

    /// `ms` since the epoch as RFC 3339 in UTC with milliseconds (exact: no trip through floating point).
    static func rfc3339(_ ms: Int64) -> String {
        let (seconds, milliseconds) = ms.quotientAndRemainder(dividingBy: 1000)
        let whole = seconds - (milliseconds < 0 ? 1 : 0)
        let fraction = milliseconds < 0 ? milliseconds + 1000 : milliseconds
        let date = Date(timeIntervalSince1970: Double(whole))
        let text = date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false)
            .timeSeparator(.colon).timeZone(separator: .omitted))
        // "2026-12-07T15:46:20Z" -> "2026-12-07T15:46:20.123Z"
        return String(text.dropLast()) + "." + String(fraction + 1000).dropFirst() + "Z"
    }
}
