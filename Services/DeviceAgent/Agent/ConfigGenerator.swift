import Crypto
import Foundation
import RampartBasics

/// Generates a device's configuration tree, deterministic for its facts (seed included) and sized to
/// roughly `facts.configSize` by padding the access and NAT policies with realistic rules.
///
/// Paths are relative to the device's `config/` folder. Private keys come out in clear as
/// `pki/<name>.key`; `DeviceFolder` stores them encrypted (`.key.enc`).
enum ConfigGenerator {
    static let certificateNames = ["device-identity", "https-server", "syslog-tls"]
    static let vpnPeers = ["branch-east", "branch-west", "partner-gw"]

    static func generate(_ facts: DeviceProfile) -> [String: Data] {
        var random = SeededGenerator(seed: facts.seed)
        var files: [String: String] = [:]
        let interfaceNames = interfaceNames(facts)

        files["management.json"] = json([
            ("hostname", quoted(facts.name)), ("ip", quoted(facts.managementIp)),
            ("prefix_length", facts.managementIp.contains(":") ? "64" : "24"),
            ("gateway", quoted(gateway(facts.managementIp))), ("dns", "[\"10.10.0.53\", \"10.20.0.53\"]"),
            ("ntp", "[\"ntp1.corp.example\", \"ntp2.corp.example\"]"),
        ])
        files["manager-registration.json"] = registrationJSON(managerId: "", deviceId: "", registeredAt: "")

        var interfaces: [String] = []
        var running = """
            ! Simulated threat defense configuration (Rampart device-agent)
            ! model \(facts.model), serial \(facts.serial)
            version \(facts.software)\(facts.patch > 0 ? ".\(facts.patch)" : "")
            hostname \(facts.name)
            !

            """
        for (index, name) in interfaceNames.enumerated() {
            let zone = random.pick(["inside", "outside", "dmz", "guest", "servers", "voice"])
            let address = "172.\(16 + index % 16).\(random.int(0...255)).1"
            let enabled = index < max(2, interfaceNames.count * 3 / 4)
            interfaces.append(
                "{\"name\": \(quoted(name)), \"zone\": \(quoted(zone)), \"ip\": \(quoted(address)), \"prefix_length\": 24, "
                    + "\"mtu\": \(random.pick([1500, 1500, 9000])), \"enabled\": \(enabled)}")
            running += """
                interface \(name)
                 nameif \(zone)\(index)
                 security-level \(zone == "inside" ? 100 : zone == "outside" ? 0 : 50)
                 ip address \(address) 255.255.255.0
                 \(enabled ? "no shutdown" : "shutdown")
                !

                """
        }
        running += """
            interface Management0/0
             management-only
             ip address \(facts.managementIp)
            !
            logging enable
            logging host inside 10.10.0.80 6/1514
            snmp-server location dc-\(random.int(1...9))
            ntp server ntp1.corp.example
            route outside 0.0.0.0 0.0.0.0 203.0.113.\(random.int(1...254)) 1

            """
        files["running-config"] = running
        files["interfaces.json"] = "{\n  \"interfaces\": [\n    " + interfaces.joined(separator: ",\n    ") + "\n  ]\n}\n"

        for name in certificateNames {
            let key = privateKey(&random)
            files["pki/\(name).key"] = key.pemRepresentation + "\n"
            files["pki/\(name).crt"] = certificate(
                subject: "CN=\(facts.name).\(name).corp.example", issuer: "CN=Corp Issuing CA 1", publicKey: key.publicKey,
                random: &random)
        }
        var tunnels: [String] = []
        for peer in vpnPeers {
            let peerKey = privateKey(&random)
            files["vpn/certs/\(peer).crt"] = certificate(
                subject: "CN=\(peer).vpn.corp.example", issuer: "CN=Corp VPN CA", publicKey: peerKey.publicKey, random: &random)
            tunnels.append(
                "{\"peer\": \(quoted(peer)), \"remote\": \"198.51.100.\(random.int(1...254))\", \"ike\": \"ikev2\", "
                    + "\"auth\": \"certificate\", \"certificate\": \"vpn/certs/\(peer).crt\", "
                    + "\"protected\": [\"10.\(random.int(1...200)).0.0/16\"], \"pfs\": \"group19\"}")
        }
        files["vpn/site-to-site.json"] = "{\n  \"tunnels\": [\n    " + tunnels.joined(separator: ",\n    ") + "\n  ]\n}\n"
        files["vpn/remote-access.json"] = json([
            ("enabled", "true"), ("pool", "\"10.250.0.0/20\""), ("identity_certificate", "\"pki/https-server.crt\""),
            ("group_policy", "\"ra-default\""), ("dns", "[\"10.10.0.53\"]"),
        ])

        // Policies take up what is left of the size asked for: 80 % access rules, 20 % NAT rules.
        let fixed = files.values.reduce(0) { $0 + $1.utf8.count }
        let remaining = max(2048, facts.configSize - fixed)
        files["policies/access-policy.json"] = accessPolicy(bytes: remaining * 4 / 5, random: &random)
        files["policies/nat-policy.json"] = natPolicy(bytes: remaining - remaining * 4 / 5, random: &random)
        return files.mapValues { Data($0.utf8) }
    }

    static func registrationJSON(managerId: String, deviceId: String, registeredAt: String) -> String {
        json([("manager_id", quoted(managerId)), ("device_id", quoted(deviceId)), ("registered_at", quoted(registeredAt))])
    }

    static func interfaceNames(_ facts: DeviceProfile) -> [String] {
        var names: [String] = []
        for (slot, group) in facts.interfaces.enumerated() {
            let prefix = group.type.contains("10G") || group.type.contains("25G") || group.type.contains("40G")
                ? "TenGigabitEthernet" : "Ethernet"
            for port in 1...max(1, group.count) { names.append("\(prefix)\(slot + 1)/\(port)") }
        }
        return names.isEmpty ? ["Ethernet1/1", "Ethernet1/2"] : names
    }

    private static func accessPolicy(bytes target: Int, random: inout SeededGenerator) -> String {
        let zones = ["inside", "outside", "dmz", "guest", "servers", "voice", "any"]
        let apps = ["HTTPS", "HTTP", "SSH", "DNS", "NTP", "SMTP", "LDAP", "Kerberos", "SNMP", "RDP", "SMB", "SIP"]
        let actions = ["allow", "allow", "allow", "trust", "block", "block-reset", "monitor"]
        var text = "{\n  \"name\": \"Corporate Access Policy\",\n  \"default_action\": \"block\",\n  \"rules\": [\n"
        var number = 1
        repeat {
            let source = "10.\(random.int(0...255)).\(random.int(0...255)).0/\(random.pick([16, 20, 24, 28]))"
            let destination = "172.\(random.int(16...31)).\(random.int(0...255)).\(random.int(1...254))/32"
            let port = random.pick([22, 25, 53, 80, 123, 389, 443, 445, 636, 3389, 5060, 8443])
            let line =
                "    {\"id\": \(number), \"name\": \"rule-\(number)\", \"enabled\": true, "
                + "\"action\": \(quoted(random.pick(actions))), \"source_zone\": \(quoted(random.pick(zones))), "
                + "\"destination_zone\": \(quoted(random.pick(zones))), \"source\": \(quoted(source)), "
                + "\"destination\": \(quoted(destination)), \"port\": \"tcp/\(port)\", "
                + "\"application\": \(quoted(random.pick(apps))), \"intrusion_policy\": \"Balanced Security and Connectivity\", "
                + "\"log\": \(quoted(random.pick(["end", "begin-end", "none"]))), \"hits\": \(random.int(0...999_999))}"
            text += (number > 1 ? ",\n" : "") + line
            number += 1
        } while text.utf8.count < target - 8
        return text + "\n  ]\n}\n"
    }

    private static func natPolicy(bytes target: Int, random: inout SeededGenerator) -> String {
        var text = "{\n  \"name\": \"Corporate NAT\",\n  \"rules\": [\n"
        var number = 1
        repeat {
            let kind = random.pick(["static", "dynamic", "dynamic-pat"])
            let line =
                "    {\"id\": \(number), \"type\": \(quoted(kind)), \"source_interface\": \"inside\", "
                + "\"destination_interface\": \"outside\", \"original_source\": \"10.\(random.int(0...255)).\(random.int(0...255)).0/24\", "
                + "\"translated_source\": \"203.0.113.\(random.int(1...254))\", \"description\": \"nat rule \(number)\"}"
            text += (number > 1 ? ",\n" : "") + line
            number += 1
        } while text.utf8.count < target - 8
        return text + "\n  ]\n}\n"
    }

    /// A P-256 key from the seeded generator (a random 32-byte scalar, retried in the rare case it is out of range).
    static func privateKey(_ random: inout SeededGenerator) -> P256.Signing.PrivateKey {
        while true {
            if let key = try? P256.Signing.PrivateKey(rawRepresentation: random.bytes(32)) { return key }
        }
    }

    /// A PEM block standing in for an X.509 certificate: its fields in text form, base64 encoded.
    static func certificate(
        subject: String, issuer: String, publicKey: P256.Signing.PublicKey, random: inout SeededGenerator
    ) -> String {
        let body = """
            simulated-certificate v3
            subject: \(subject)
            issuer: \(issuer)
            serial: \(random.bytes(16).hexString)
            not-before: 2025-01-01T00:00:00Z
            not-after: 2027-01-01T00:00:00Z
            public-key: \(publicKey.derRepresentation.base64EncodedString())
            signature: \(random.bytes(64).base64EncodedString())

            """
        let encoded = Data(body.utf8).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN CERTIFICATE-----\n\(encoded)\n-----END CERTIFICATE-----\n"
    }

    private static func gateway(_ ip: String) -> String {
        let parts = ip.split(separator: ".")
        guard parts.count == 4 else { return ip }
        return parts.prefix(3).joined(separator: ".") + ".1"
    }

    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// A JSON object with keys in the order given, values already encoded.
    static func json(_ fields: [(String, String)]) -> String {
        "{\n" + fields.map { "  \(quoted($0.0)): \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }
}
