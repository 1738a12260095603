import ArgumentParser
import Foundation
import RampartBus
import RampartCore
import RampartRPC

/// `rampart keys`: the bus's CURVE keys (docs/security.md). Works on a key folder directly; the bus
/// re-reads its authorized keys when they change, so adding and revoking take effect without a restart.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make, list and revoke the bus's CURVE keys (a key folder; every file mode 0600).",
        subcommands: [Init.self, Add.self, Revoke.self, List.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a key folder: the broker's key, one key per service, operators and devices.",
            discussion: """
                DIR/broker.key is the bus's own; DIR/services/<service>.key one per service kind; \
                DIR/operators/<name>.key one per person; DIR/devices/<name>.key one per device, named as the device. \
                Give each process only its own file (--key FILE); --keys DIR lets a process find its own in a folder.
                """)

        @Argument(help: "The folder to create (or an empty one).") var dir: String
        @Option(name: .customLong("operator"), help: "An operator key, NAME or NAME:ROLE (role admin, operator or viewer; default admin). Repeatable; default: admin:admin.")
        var operators: [String] = []
        @Option(name: .customLong("device"), help: "A device key, named as the device (repeatable).") var devices: [String] = []

        func run() throws {
            let parsed = try operators.map(KeysCommand.parseOperator)
            let folder = try KeysCommand.refusing {
                try KeyFolder.initialize(at: dir, operators: parsed.isEmpty ? [("admin", .admin)] : parsed, devices: devices)
            }
            let entries = try folder.list()
            print("made \(entries.count) keys in \(dir) (broker key: \(try BusKeyFile.load(folder.brokerKeyPath).keys.publicKey))")
            print("start the bus with --keys \(dir); give each process its own key file with --key FILE")
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make and admit keys for NAMEs in ROLE.")

        @Argument(help: "The key folder.") var dir: String
        @Option(help: "admin, operator, viewer, device or service.") var role: BusRole
        @Argument(help: "The keys' names (a device key is named as its device).") var names: [String]

        func validate() throws {
            guard !names.isEmpty else { throw ValidationError("name at least one key") }
        }

        func run() throws {
            let paths = try KeysCommand.refusing { try KeyFolder(path: dir).add(names.map { (role, $0) }) }
            for path in paths { print(path) }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke the key named NAME: the bus refuses it from its next request on; its file is deleted.")

        @Argument(help: "The key folder.") var dir: String
        @Argument(help: "The key's name.") var name: String

        func run() throws {
            let removed = try KeysCommand.refusing { try KeyFolder(path: dir).revoke(name: name) }
            guard removed > 0 else {
                printError("NOT_FOUND: no key named '\(name)' in \(dir)")
                throw ExitCode(3)
            }
            print("revoked \(removed) key\(removed == 1 ? "" : "s") named \(name)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the admitted keys.")

        @Argument(help: "The key folder.") var dir: String
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() throws {
            let entries = try KeysCommand.refusing { try KeyFolder(path: dir).list() }
            if output == .json {
                let rows = entries.map { ["role": $0.role.rawValue, "name": $0.name, "public_key": $0.key] }
                let data = try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            var table = Table("ROLE", "NAME", "PUBLIC KEY")
            for entry in entries { table.add(entry.role.rawValue, entry.name, entry.key) }
            print(table.render())
        }
    }

    /// `body`'s result; a key folder that refuses (a name taken or invalid, not a key folder, a file
    /// others may read) is said on stderr and exits 4, like any refusal.
    static func refusing<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as BusKeyError {
            printError("refused: \(error)")
            throw ExitCode(4)
        }
    }

    static func parseOperator(_ text: String) throws -> (name: String, role: BusRole) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let role = parts.count == 2 ? BusRole(rawValue: parts[1]) : .admin
        guard let role, [.admin, .operator, .viewer].contains(role), let name = parts.first else {
            throw ValidationError("--operator must be NAME or NAME:ROLE with ROLE admin, operator or viewer; not '\(text)'")
        }
        return (name, role)
    }
}

extension BusRole: ExpressibleByArgument {}
