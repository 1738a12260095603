import DeviceAgentCore
import Foundation
import Testing

@Suite("R2 the device CLI's command grammar")
struct RestoreCommandTests {
    @Test("R2: restore remote-manager-backup location HOST USER PATH backup TAR-FILE")
    func location() throws {
        let command = try DeviceCommandParser.parse(
            "restore remote-manager-backup location 10.1.2.3 backup-op /srv/backups/fw backup fw-edge-01_20250131T120000Z.tar"
        )
        let expected = SCPLocation(
            host: "10.1.2.3", user: "backup-op", path: "/srv/backups/fw", fileName: "fw-edge-01_20250131T120000Z.tar")
        #expect(command == .restore(.location(expected)))
        #expect(expected.remoteSpec == "backup-op@10.1.2.3:/srv/backups/fw/fw-edge-01_20250131T120000Z.tar")
        // host:port, keywords in any case, extra blanks, a trailing slash on PATH.
        let ported = try DeviceCommandParser.parse(
            "  RESTORE Remote-Manager-Backup LOCATION copy.example.net:2222  ops\tbackups/ BACKUP a.tar ")
        guard case .restore(.location(let parsed)) = ported else {
            Issue.record("not a location: \(ported)")
            return
        }
        #expect(
            parsed.host == "copy.example.net" && parsed.port == 2222
                && parsed.remoteSpec == "ops@copy.example.net:backups/a.tar")
        let v6 = try DeviceCommandParser.parse(
            "restore remote-manager-backup location [::1]:2200 root /tmp backup a.tar")
        #expect(
            v6 == .restore(.location(.init(host: "[::1]", port: 2200, user: "root", path: "/tmp", fileName: "a.tar"))))
    }

    @Test("R2: scp gets batch mode, accept-new host keys, the port, the identity, then source and destination")
    func scpArguments() {
        var settings = FetchSettings()
        settings.sshIdentity = "/keys/id_ed25519"
        settings.sshKnownHosts = "/keys/known_hosts"
        let location = SCPLocation(host: "[::1]", port: 2200, user: "root", path: "/tmp/b", fileName: "a.tar")
        let arguments = BackupFetcher.scpArguments(location, destination: "/dev-dir/x.tar", settings: settings)
        #expect(Array(arguments.prefix(5)) == ["-B", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"])
        #expect(arguments.contains("UserKnownHostsFile=/keys/known_hosts"))
        #expect(
            arguments.suffix(7) == [
                "-i", "/keys/id_ed25519", "-P", "2200", "--", "root@[::1]:/tmp/b/a.tar", "/dev-dir/x.tar",
            ])
        let plain = BackupFetcher.scpArguments(
            .init(host: "h", user: "u", path: "p", fileName: "f.tar"), destination: "/d", settings: FetchSettings())
        #expect(!plain.contains("-P") && !plain.contains("-i") && plain.suffix(3) == ["--", "u@h:p/f.tar", "/d"])
    }

    @Test("R2: restore remote-manager-backup backup TAR-FILE and url URL; help, exit, blank lines")
    func otherCommands() throws {
        #expect(
            try DeviceCommandParser.parse("restore remote-manager-backup backup fw_20250131T120000Z.tar")
                == .restore(.local(fileName: "fw_20250131T120000Z.tar")))
        let url =
            "https://storage.example:7480/v1/backups/0c9e/fw-edge-01_20250131T120000Z.tar?expires=1738330000&kid=1a2b3c4d&nonce=abc&sig=xyz"
        let parsed = try DeviceCommandParser.parse("restore remote-manager-backup url \(url)")
        #expect(parsed == .restore(.url(try #require(URL(string: url)))))
        if case .restore(let source) = parsed {
            #expect(source.fileName == "fw-edge-01_20250131T120000Z.tar")
            // What the CLI echoes keeps the port and leaves the signature out.
            #expect(source.description == "https://storage.example:7480/…/fw-edge-01_20250131T120000Z.tar")
        }
        #expect(try DeviceCommandParser.parse("help") == .help)
        #expect(try DeviceCommandParser.parse("?") == .help)
        #expect(try DeviceCommandParser.parse("exit") == .exit)
        #expect(try DeviceCommandParser.parse("logout") == .exit)
        #expect(try DeviceCommandParser.parse("") == .empty)
        #expect(try DeviceCommandParser.parse(" \t ") == .empty)
    }

    @Test("R2: restore remote-manager-backup check SOURCE: the same three sources, checked only")
    func checkCommands() throws {
        #expect(
            try DeviceCommandParser.parse("restore remote-manager-backup check backup fw_20250131T120000Z.tar")
                == .check(.local(fileName: "fw_20250131T120000Z.tar")))
        #expect(
            try DeviceCommandParser.parse("Restore REMOTE-MANAGER-BACKUP Check location [::1]:2200 root /tmp backup a.tar")
                == .check(.location(.init(host: "[::1]", port: 2200, user: "root", path: "/tmp", fileName: "a.tar"))))
        let url = "https://storage.example:7480/v1/backups/0c9e/fw_20250131T120000Z.tar?expires=1&sig=xyz"
        #expect(
            try DeviceCommandParser.parse("restore remote-manager-backup check url \(url)")
                == .check(.url(try #require(URL(string: url)))))
        // Values are checked as for a restore.
        #expect(throws: RestoreError.self) {
            try DeviceCommandParser.parse("restore remote-manager-backup check backup ../../etc/passwd")
        }
    }

    /// Lines that must be refused, and a word the message must hold.
    static let badLines: [(String, String)] = [
        ("reboot", "unknown command"),
        ("restore", "remote-manager-backup"),
        ("restore local-backup backup a.tar", "unknown restore kind"),
        ("restore remote-manager-backup", "'location', 'url' or 'backup'"),
        ("restore remote-manager-backup ftp host", "unknown source"),
        ("restore remote-manager-backup location host user /p backup", "HOST USER PATH backup TAR-FILE"),
        ("restore remote-manager-backup location host user /p file a.tar", "HOST USER PATH backup TAR-FILE"),
        ("restore remote-manager-backup location -oProxyCommand=sh user /p backup a.tar", "HOST"),
        ("restore remote-manager-backup location host:0 user /p backup a.tar", "port"),
        ("restore remote-manager-backup location host:99999 user /p backup a.tar", "port"),
        ("restore remote-manager-backup location ::1 user /p backup a.tar", "brackets"),
        ("restore remote-manager-backup location [::1 user /p backup a.tar", "'['"),
        ("restore remote-manager-backup location host -luser /p backup a.tar", "USER"),
        ("restore remote-manager-backup location host user /p;rm backup a.tar", "PATH"),
        ("restore remote-manager-backup location host user $(id) backup a.tar", "PATH"),
        ("restore remote-manager-backup location host user /p backup ../a.tar", "without a folder"),
        ("restore remote-manager-backup location host user /p backup ..", "TAR-FILE"),
        ("restore remote-manager-backup backup ../../etc/passwd", "without a folder"),
        ("restore remote-manager-backup backup sub/a.tar", "without a folder"),
        ("restore remote-manager-backup backup .", "TAR-FILE"),
        ("restore remote-manager-backup backup -rf", "TAR-FILE"),
        ("restore remote-manager-backup backup a.tar b.tar", "one TAR-FILE"),
        ("restore remote-manager-backup url ftp://host/a.tar", "http"),
        ("restore remote-manager-backup url file:///etc/passwd", "http"),
        ("restore remote-manager-backup url https://host/", "file name"),
        ("restore remote-manager-backup url", "one URL"),
        ("restore remote-manager-backup check", "check' needs 'location', 'url' or 'backup'"),
        ("restore remote-manager-backup check check backup a.tar", "unknown source 'check'"),
        ("restore remote-manager-backup check ftp host", "unknown source"),
        ("restore remote-manager-backup backup a.tar check", "one TAR-FILE"),
        ("help me", "no arguments"),
        ("exit now", "no arguments"),
        ("restore remote-manager-backup backup a\u{7}.tar", "control characters"),
        (String(repeating: "x", count: 9000), "longer than"),
    ]

    @Test("R2: bad lines are refused with a message saying what is wrong", arguments: badLines.indices)
    func badLine(_ index: Int) {
        let (line, expected) = Self.badLines[index]
        let error = #expect(throws: RestoreError.self) { try DeviceCommandParser.parse(line) }
        #expect(error?.kind == .usage)
        #expect(error?.message.contains(expected) == true, "'\(line.prefix(60))' → \(error?.message ?? "nothing")")
    }
}
