import DeviceAgentCore
import Foundation
import Logging
import RampartArchive
import RampartTesting
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// An OpenSSH server on loopback for one test: its own host key, config and authorized key (the
/// current user's, generated), started with `/usr/sbin/sshd -D -e -f CONFIG -p PORT`.
final class LoopbackSSHServer {
    static let sshd = "/usr/sbin/sshd"
    let folder: String
    let port: Int
    let clientKey: String
    let knownHosts: String
    let user: String
    private let process: ChildProcess

    init() async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.sshd),
            "OpenSSH server is not installed (\(Self.sshd) missing): apt-get install openssh-server openssh-client")
        try #require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh-keygen")
                && FileManager.default.isExecutableFile(atPath: "/usr/bin/scp"),
            "OpenSSH client is not installed (ssh-keygen, scp): apt-get install openssh-client")
        folder = temporaryPath("sshd")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        port = FreePort.next()
        clientKey = folder + "/client_ed25519"
        knownHosts = folder + "/known_hosts"
        user = String(cString: getpwuid(getuid()).pointee.pw_name)
        for key in [folder + "/host_ed25519", clientKey] {
            let made = try await ChildProcess.run(
                "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "rampart-test", "-f", key])
            try #require(made.exitCode == 0, "ssh-keygen failed: \(made)")
        }
        try FileManager.default.copyItem(atPath: clientKey + ".pub", toPath: folder + "/authorized_keys")
        // sshd wants its privilege separation folder when it runs as root.
        if getuid() == 0 {
            try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        }
        let config = """
            ListenAddress 127.0.0.1
            HostKey \(folder)/host_ed25519
            AuthorizedKeysFile \(folder)/authorized_keys
            PidFile none
            StrictModes no
            UsePAM no
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            AllowUsers \(user)
            Subsystem sftp internal-sftp
            LogLevel VERBOSE

            """
        try config.write(toFile: folder + "/sshd_config", atomically: true, encoding: .utf8)
        process = try ChildProcess(
            Self.sshd, ["-D", "-e", "-f", folder + "/sshd_config", "-p", String(port)], logPath: folder + "/sshd.log")
        // Ready when it accepts connections.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while !Self.accepts(port) {
            guard process.isRunning, clock.now < deadline else {
                throw AgentError("sshd did not start: \(process.log)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    var log: String { process.log }

    func stop() {
        process.stopBlocking(timeout: 2)  // sshd ends on SIGTERM at once
        try? FileManager.default.removeItem(atPath: folder)
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == 0
    }
}

/// A one-route-per-prefix HTTP/1.1 server on loopback: `/ok/...` answers 200 with `body`, anything else
/// 403 "forbidden: link expired" (what storage says for an expired signed link).
final class LoopbackHTTPServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let body: Data

    init(body: Data) throws {
        self.body = body
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw AgentError("cannot listen")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    private func serve() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            var request = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !String(decoding: request, as: UTF8.self).contains("\r\n\r\n") {
                let count = recv(client, &buffer, buffer.count, 0)
                if count <= 0 { break }
                request += buffer[0..<count]
            }
            let line = String(decoding: request, as: UTF8.self).split(separator: "\r\n").first ?? ""
            let path = line.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
            let (status, payload) =
                path.hasPrefix("/ok/") ? ("200 OK", body) : ("403 Forbidden", Data("forbidden: link expired\n".utf8))
            var response = Data(
                "HTTP/1.1 \(status)\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n".utf8)
            response.append(payload)
            response.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let sent = send(client, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                    if sent <= 0 { break }
                    offset += sent
                }
            }
            close(client)
        }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

@Suite("R2 fetching the backup: scp from an OpenSSH server on loopback, signed download URLs", .serialized)
struct RestoreFetchTests {
    static let fileName = "fw-edge-01_20250131T120000Z.tar"

    @Test("R2: location HOST:PORT USER PATH backup TAR-FILE fetches with the system scp client from sshd on loopback")
    func scpFetch() async throws {
        let server = try await LoopbackSSHServer()
        defer { server.stop() }
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let remote = server.folder + "/remote backups".replacingOccurrences(of: " ", with: "-")
        try FileManager.default.createDirectory(atPath: remote, withIntermediateDirectories: true)
        try archive.write(to: URL(fileURLWithPath: remote + "/" + Self.fileName))
        let device = temporaryPath("scp-device")
        try FileManager.default.createDirectory(atPath: device, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: device) }

        var settings = FetchSettings()
        settings.sshIdentity = server.clientKey
        settings.sshKnownHosts = server.knownHosts
        settings.timeout = .seconds(30)
        let command = try DeviceCommandParser.parse(
            "restore remote-manager-backup location 127.0.0.1:\(server.port) \(server.user) \(remote) backup \(Self.fileName)"
        )
        guard case .restore(let source) = command else {
            Issue.record("not a restore: \(command)")
            return
        }
        let fetched = try await BackupFetcher.fetch(source, directory: device, settings: settings, logger: quietLogger)
        #expect(fetched.isTemporary && fetched.path.hasPrefix(device + "/.restore-download-"))
        #expect(try fetched.read(maxBytes: 1 << 30) == archive, "\(server.log)")
        fetched.removeIfTemporary()
        #expect((try FileManager.default.contentsOfDirectory(atPath: device)).isEmpty)
        // accept-new recorded the server's host key.
        #expect((try String(contentsOfFile: server.knownHosts, encoding: .utf8)).contains("ssh-ed25519"))

        // A file that is not there: scp's own message, and nothing left behind.
        let missing = SCPLocation(
            host: "127.0.0.1", port: server.port, user: server.user, path: remote, fileName: "absent.tar")
        let error = await #expect(throws: RestoreError.self) {
            try await BackupFetcher.fetch(
                .location(missing), directory: device, settings: settings, logger: quietLogger)
        }
        #expect(error?.kind == .fetch)
        #expect(
            error?.message.contains("absent.tar") == true
                && error?.message.lowercased().contains("no such file") == true, "\(error?.message ?? "")")
        #expect((try FileManager.default.contentsOfDirectory(atPath: device)).isEmpty)

        // A key the server does not know: refused in batch mode, no prompt.
        var stranger = settings
        stranger.sshIdentity = server.folder + "/host_ed25519"
        let denied = await #expect(throws: RestoreError.self) {
            try await BackupFetcher.fetch(source, directory: device, settings: stranger, logger: quietLogger)
        }
        #expect(denied?.message.lowercased().contains("permission denied") == true, "\(denied?.message ?? "")")
    }

    @Test("R1, R2: a restore from an scp location runs end to end under a lease (in-process coordinator)")
    func scpRestore() async throws {
        let server = try await LoopbackSSHServer()
        defer { server.stop() }
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        try archive.write(to: URL(fileURLWithPath: server.folder + "/" + Self.fileName))
        let replacement = try makeReplacement()
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        var configuration = RestoreSession.Configuration()
        configuration.rebootDelayMs = 20
        configuration.fetch.sshIdentity = server.clientKey
        configuration.fetch.sshKnownHosts = server.knownHosts
        let coordinator = FakeCoordinator()
        let console = CapturingConsole()
        let restore = RestoreSession(
            directory: replacement.path, configuration: configuration, coordinator: coordinator, console: console,
            logger: quietLogger)
        let source = BackupSource.location(
            .init(host: "127.0.0.1", port: server.port, user: server.user, path: server.folder, fileName: Self.fileName)
        )
        let outcome = await restore.run(source, boot: fakeBoot(BootRecorder()))
        guard case .restored(let restored) = outcome else {
            Issue.record("not restored:\n\(console.text)")
            return
        }
        #expect(restored.folder.facts.managementIp == "10.0.0.11")
        #expect(coordinator.requests.first?.archiveSha256 == sha256Hex(archive))
        #expect(coordinator.requests.first?.archiveFileName == Self.fileName)
        // The download is gone.
        #expect(
            (try FileManager.default.contentsOfDirectory(atPath: replacement.path)).allSatisfy {
                !$0.hasPrefix(".restore")
            })
    }

    @Test("L2, R2: check location ... and check url URL fetch the backup, check it and remove the download; nothing else is written")
    func checkRemoteSources() async throws {
        let server = try await LoopbackSSHServer()
        defer { server.stop() }
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        try archive.write(to: URL(fileURLWithPath: server.folder + "/" + Self.fileName))
        let http = try LoopbackHTTPServer(body: archive)
        defer { http.stop() }
        let replacement = try makeReplacement()
        defer { try? FileManager.default.removeItem(atPath: replacement.path) }
        let before = snapshot(replacement.path)
        var configuration = RestoreSession.Configuration()
        configuration.fetch.sshIdentity = server.clientKey
        configuration.fetch.sshKnownHosts = server.knownHosts
        let coordinator = FakeCoordinator()
        let console = CapturingConsole()
        let session = RestoreSession(
            directory: replacement.path, configuration: configuration, coordinator: coordinator, console: console,
            logger: quietLogger)
        let location = BackupSource.location(
            .init(host: "127.0.0.1", port: server.port, user: server.user, path: server.folder, fileName: Self.fileName))
        let url = try #require(
            URL(string: "http://127.0.0.1:\(http.port)/ok/v1/backups/0c9e/\(Self.fileName)?expires=1&kid=a&nonce=b&sig=c"))
        for source in [location, .url(url)] {
            let report = await session.check(source)
            #expect(report.passed, "\(source): \(console.text)")
            #expect(snapshot(replacement.path) == before, "the download is removed, nothing else written")
        }
        #expect(console.text.contains("check: ok     fetch: downloaded \(Self.fileName) (removed after the check)"))
        #expect(coordinator.methods == ["CheckRestore", "CheckRestore"])
        #expect(coordinator.requests.allSatisfy { $0.archiveSha256 == sha256Hex(archive) })
    }

    @Test("L2, R2: url URL downloads a signed link with curl and checks the HTTP status")
    func urlFetch() async throws {
        let (archive, original) = try await makeBackup()
        defer { try? FileManager.default.removeItem(atPath: original) }
        let server = try LoopbackHTTPServer(body: archive)
        defer { server.stop() }
        let device = temporaryPath("url-device")
        try FileManager.default.createDirectory(atPath: device, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: device) }
        let good = try #require(
            URL(
                string:
                    "http://127.0.0.1:\(server.port)/ok/v1/backups/0c9e/\(Self.fileName)?expires=1&kid=a&nonce=b&sig=c")
        )
        let fetched = try await BackupFetcher.fetch(
            .url(good), directory: device, settings: FetchSettings(), logger: quietLogger)
        #expect(fetched.fileName == Self.fileName)
        #expect(try fetched.read(maxBytes: 1 << 30) == archive)
        fetched.removeIfTemporary()

        let expired = try #require(
            URL(string: "http://127.0.0.1:\(server.port)/v1/backups/0c9e/\(Self.fileName)?expires=1"))
        let error = await #expect(throws: RestoreError.self) {
            try await BackupFetcher.fetch(
                .url(expired), directory: device, settings: FetchSettings(), logger: quietLogger)
        }
        #expect(error?.kind == .fetch)
        #expect(
            error?.message.contains("HTTP 403") == true && error?.message.contains("link expired") == true,
            "\(error?.message ?? "")")
        #expect((try FileManager.default.contentsOfDirectory(atPath: device)).isEmpty)

        let closed = try #require(URL(string: "http://127.0.0.1:\(FreePort.next())/\(Self.fileName)"))
        let refused = await #expect(throws: RestoreError.self) {
            try await BackupFetcher.fetch(
                .url(closed), directory: device, settings: FetchSettings(), logger: quietLogger)
        }
        #expect(refused?.message.contains("curl exit 7") == true, "\(refused?.message ?? "")")
    }
}
