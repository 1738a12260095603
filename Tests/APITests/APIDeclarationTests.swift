import Foundation
import RampartAPI
import RampartProto
import RampartRPC
import SwiftProtobuf
import Testing

/// Every service's API, as generated from proto/.
let everyAPI: [any RPCServiceAPI.Type] = [
    AuditAPI.self, BackupAPI.self, BrokerAPI.self, DeviceAPI.self, InventoryAPI.self, JournalAPI.self, LinksAPI.self,
    NotifyAPI.self, RestoreAPI.self, StorageAPI.self,
]

/// The schema proto/ compiles to (embedded by dev/generate-protos.sh), with the bus options readable.
func descriptorSet() throws -> Google_Protobuf_FileDescriptorSet {
    let data = try #require(Data(base64Encoded: RampartDescriptorSet.base64))
    return try Google_Protobuf_FileDescriptorSet(serializedBytes: data, extensions: Rampart_Bus_V1_Access_Extensions)
}

@Suite("API: each service's API is declared once, in proto/")
struct APIDeclarationTests {
    @Test("P14: every rpc of proto/ is a method of its service's API, with the declared roles; nothing more")
    func apisMatchTheProtos() throws {
        var declared: [String: Rampart_Bus_V1_Access] = [:]
        var services: [String: String] = [:]
        for file in try descriptorSet().file {
            for service in file.service {
                let wire = service.options.Rampart_Bus_V1_wireName.isEmpty ? service.name : service.options.Rampart_Bus_V1_wireName
                for method in service.method {
                    let name = "\(file.package).\(wire)/\(method.name)"
                    #expect(method.options.hasRampart_Bus_V1_access, "\(name) declares no access option")
                    declared[name] = method.options.Rampart_Bus_V1_access
                    services[name] = service.options.Rampart_Bus_V1_busService
                }
            }
        }
        let generated = everyAPI.flatMap { api in api.methods.map { (api, $0) } }
        #expect(generated.count == declared.count, "\(generated.count) generated methods, \(declared.count) rpcs in proto/")
        #expect(Set(generated.map(\.1.name)).count == generated.count, "a method name is generated twice")
        for (api, method) in generated {
            let access = try #require(declared[method.name], "\(method.name) is not an rpc of proto/")
            #expect(method.service == api.serviceName && method.service == services[method.name], "\(method.name)")
            #expect(method.policy.roles == Set(access.roles.compactMap(BusRole.init)), "\(method.name)")
            #expect(method.policy.audited == access.audited, "\(method.name)")
            #expect(!method.policy.roles.isEmpty, "\(method.name) may be called by nobody")
        }
    }

    @Test("P14: a service's access policy has exactly its methods")
    func policiesCoverTheirMethods() {
        for api in everyAPI {
            #expect(Set(api.policy.methods.keys) == Set(api.methods.map(\.name)), "\(api)")
        }
    }

    @Test("every proto role is a bus role, spelled as keys carry it")
    func roles() {
        let named: [(Rampart_Bus_V1_Role, BusRole)] = [
            (.admin, .admin), (.operator, .operator), (.viewer, .viewer), (.device, .device), (.service, .service),
        ]
        for (proto, role) in named { #expect(BusRole(proto) == role) }
        #expect(BusRole(.unspecified) == nil)
        #expect(Set(named.map(\.1)) == Set(BusRole.allCases))
    }
}

@Suite("API: no method name spelled outside the generated API")
struct NoLiteralMethodNamesTests {
    /// The repository this file is in.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The string literals of one line of Swift, up to a comment (`"""` blocks are read line by line).
    static func literals(_ line: Substring) -> [String] {
        var found: [String] = []
        var current: String?
        var previous: Character = " "
        var escaped = false
        for character in line {
            if var text = current {
                if escaped {
                    escaped = false
                    text.append(character)
                } else if character == "\\" {
                    escaped = true
                    text.append(character)
                } else if character == "\"" {
                    found.append(text)
                    current = nil
                    continue
                } else {
                    text.append(character)
                }
                current = text
            } else if character == "\"" {
                current = ""
            } else if character == "/" && previous == "/" {
                break
            }
            previous = character
        }
        return found
    }

    @Test("P14: literals naming a real method, or a real service's method prefix, appear only in generated code")
    func noLiteralMethodNames() throws {
        let names = Set(everyAPI.flatMap { $0.methods.map(\.name) })
        let prefixes = Set(names.map { String($0[...$0.firstIndex(of: "/")!]) })
        #expect(names.count > 60 && prefixes.count >= 9)
        var offenders: [String] = []
        var files = 0
        for folder in ["Services", "Shared", "Tests", "Benchmarks", "Tools"] {
            let base = Self.root.appendingPathComponent(folder)
            guard let walk = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else { continue }
            for case let url as URL in walk where url.pathExtension == "swift" {
                let path = url.path.dropFirst(Self.root.path.count + 1)
                if path.hasPrefix("Shared/RampartProto/") || path.hasSuffix(".generated.swift") { continue }
                files += 1
                let text = try String(contentsOf: url, encoding: .utf8)
                for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    for literal in Self.literals(line) where names.contains(literal) || prefixes.contains(where: literal.hasPrefix) {
                        offenders.append("\(path):\(number + 1): \"\(literal)\"")
                    }
                }
            }
        }
        #expect(files > 100, "the walk found the sources (\(files) files under \(Self.root.path))")
        #expect(offenders.isEmpty, "use the generated API (InventoryAPI.getDevice, ...) instead: \(offenders)")
    }

    @Test("the walk would see a literal method name")
    func literalsAreFound() {
        #expect(Self.literals(#"let m = "rampart.example.v1.Example/Get" // "x""#) == ["rampart.example.v1.Example/Get"])
        #expect(Self.literals(#"// "rampart.example.v1.Example/Get""#).isEmpty)
        #expect(Self.literals(#"f("a\"b", "c")"#) == [#"a\"b"#, "c"])
    }
}
