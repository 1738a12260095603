import ArgumentParser
import RampartAPI
import RampartCore
import RampartCrypto
import RampartDatabase
import RampartServiceBoot
import StorageHTTP
import StorageService

/// `storage`: serves backup objects on the bus, sealed at rest under a master key. Several instances
/// may share the database and the folder.
@main
struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage", abstract: "Rampart's storage service: backup objects, encrypted at rest.")

    @OptionGroup var bus: BusOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    @Option(help: "Folder of objects and uploads (env RAMPART_STORAGE_DIR).")
    var dir: String = Environment.value("RAMPART_STORAGE_DIR") ?? ".rampart/storage"

    @Option(help: "Master key file: 32 bytes, mode 0600; created on first start (default: <dir>/master.key).")
    var masterKey: String?

    @Option(help: "This instance's id (default: storage-<pid>-<random>).")
    var instanceId: String?

    @Option(help: "Requests served at once.")
    var capacity: UInt32 = 64

    @Option(help: "Address of the HTTP endpoint for signed download links (env RAMPART_STORAGE_HTTP_HOST).")
    var httpHost: String = Environment.value("RAMPART_STORAGE_HTTP_HOST") ?? "127.0.0.1"

    @Option(help: "Port of the HTTP endpoint for signed download links; 0 disables it (env RAMPART_STORAGE_HTTP_PORT).")
    var httpPort: Int = Environment.value("RAMPART_STORAGE_HTTP_PORT").flatMap { Int($0) } ?? 7480

    @Option(help: "An open upload nobody wrote to for this many seconds is abandoned: its row and partial file are removed (env RAMPART_UPLOAD_IDLE_SECONDS).")
    var uploadIdleSeconds: Int = Environment.value("RAMPART_UPLOAD_IDLE_SECONDS").flatMap { Int($0) } ?? 3600

    func validate() throws {
        guard !dir.isEmpty else { throw ValidationError("--dir must not be empty") }
        guard capacity > 0 else { throw ValidationError("--capacity must be at least 1") }
        guard (0...65535).contains(httpPort) else {
            throw ValidationError("--http-port must be 0...65535 (0 disables HTTP)")
        }
        guard !httpHost.isEmpty else { throw ValidationError("--http-host must not be empty") }
        guard uploadIdleSeconds >= 1 else { throw ValidationError("--upload-idle-seconds must be at least 1") }
    }

    /// Storage allocates and frees buffers of about 1 MiB per batch of every upload and download. glibc
    /// would hand such blocks back to the kernel on free (mmap'ed blocks, heap tops above the trim
    /// threshold) and take them again, page fault by page fault, on the next batch: 18 % of storage's
    /// CPU during downloads (docs/benchmarks.md, "Export Backup Links: signing and signed downloads").
    /// Blocks up to 16 MiB come from the heap and up to 64 MiB of freed memory stays there for reuse.
    static func keepBatchMemory() {
        _ = glibcMallopt(-3, 16 << 20)  // M_MMAP_THRESHOLD (<malloc.h>)
        _ = glibcMallopt(-1, 64 << 20)  // M_TRIM_THRESHOLD
    }

    func run() async throws {
        let boot = ServiceBoot("storage", log: log)
        Self.keepBatchMemory()
        let keyPath = masterKey ?? dir + "/master.key"
        let key: MasterKey
        do {
            key = try MasterKey.loadOrCreate(at: keyPath)
        } catch {
            boot.logger.critical("refusing to start", metadata: ["error": "\(error)"])
            throw ExitCode(78)  // EX_CONFIG
        }
        boot.logger.info("master key loaded", metadata: ["key-id": "\(key.id)", "dir": "\(dir)"])
        try await boot.run(
            service: StorageAPI.serviceName, bus: bus, database: database, instanceId: instanceId, capacity: capacity,
            migrations: [StorageService.migrate]
        ) { resources, host in
            let logger = resources.logger
            let storage = StorageService(
                configuration: StorageConfiguration(directory: dir), pool: resources.pool, masterKey: key, logger: logger)
            try storage.prepareDirectories()
            // Abandoned uploads (a worker that died mid-upload) are swept every quarter of the idle time, at
            // most every minute.
            let janitor = UploadJanitor(
                storage: storage, idleSeconds: uploadIdleSeconds, interval: .seconds(max(1, min(60, uploadIdleSeconds / 4))))
            var services: [BootService] = [.required(resources.serve(storage.router(), on: host)), .required(janitor)]
            if httpPort == 0 {
                logger.info("HTTP downloads disabled (--http-port 0)")
            } else {
                // Signed download links (L2) over HTTP; each request is checked by link-signer over the bus.
                logger.info("starting HTTP downloads", metadata: ["address": "http://\(httpHost):\(httpPort)"])
                let linkClient = resources.client(of: host, caller: StorageAPI.serviceName)
                let http = StorageHTTPServer(
                    configuration: .init(host: httpHost, port: httpPort), storage: storage,
                    verifier: BusLinkVerifier(client: linkClient), audit: resources.audit, logger: logger)
                // A port already taken (another instance on this host) leaves the bus service running: the
                // failure is logged by the server and the group goes on without HTTP.
                services.append(.failureIgnored(http))
            }
            return services
        }
    }
}

/// glibc's `int mallopt(int param, int value)` from <malloc.h>, which the Glibc module does not export.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
