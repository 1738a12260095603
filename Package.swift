// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "rampart",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "bus", targets: ["Bus"]),
        .executable(name: "inventory", targets: ["Inventory"]),
        .executable(name: "rampart", targets: ["Rampart"]),
        .executable(name: "device-agent", targets: ["DeviceAgent"]),
        .executable(name: "storage", targets: ["Storage"]),
        .executable(name: "backup-worker", targets: ["BackupWorker"]),
        .executable(name: "link-signer", targets: ["LinkSigner"]),
        .executable(name: "restore-coordinator", targets: ["RestoreCoordinator"]),
        .executable(name: "notifier", targets: ["Notifier"]),
        .executable(name: "bus-bench", targets: ["BusBench"]),
        .executable(name: "rampart-api-gen", targets: ["APIGen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // C libraries (Debian packages), one system-library target each.
        .systemLibrary(name: "CZeroMQ", path: "Shared/CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(
            name: "CLibPQ", path: "Shared/CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CZlib", path: "Shared/CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Small helpers every layer shares: epoch milliseconds (one rounding rule), hex of bytes, durations
        // as people type them.
        .target(name: "RampartBasics", path: "Shared/RampartBasics", swiftSettings: strict),

        // Thin, safe wrappers over them.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"], path: "Shared/ZeroMQ", swiftSettings: strict),
        .target(
            name: "Postgres",
            dependencies: ["CLibPQ", .product(name: "Logging", package: "swift-log")],
            path: "Shared/Postgres", swiftSettings: strict),

        // Generated protobuf code (dev/generate-protos.sh); never edited by hand.
        .target(
            name: "RampartProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Shared/RampartProto"),

        // The CLI's JSON for scripts: every field, enums as tables spell them, RFC 3339 times; walks the schema.
        .target(
            name: "RampartJSON",
            dependencies: ["RampartProto", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Shared/RampartJSON", swiftSettings: strict),

        // What a bus method is: typed method descriptors, roles and access policies, the caller protocol.
        .target(
            name: "RampartRPC",
            dependencies: ["RampartProto", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Shared/RampartRPC", swiftSettings: strict),

        // Each service's API, generated from the service blocks of proto/ (dev/generate-protos.sh): method
        // descriptors, policies and typed clients; plus how its enum values and words are spelled (labels,
        // restore steps, download paths).
        .target(
            name: "RampartAPI", dependencies: ["RampartBasics", "RampartProto", "RampartRPC"], path: "Shared/RampartAPI",
            swiftSettings: strict),

        // The inventory's pure rules, shared by everyone who handles devices: names and validation, the
        // backup support matrix (B2).
        .target(
            name: "RampartInventory", dependencies: ["RampartProto", "RampartRPC", "RampartAPI"], path: "Shared/RampartInventory",
            swiftSettings: strict),

        // Writes RampartAPI's generated files from proto/'s descriptor set; run by dev/generate-protos.sh.
        .executableTarget(
            name: "APIGen",
            dependencies: ["RampartProto", "RampartRPC", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Tools/APIGen", swiftSettings: strict),

        // The bus: frames, broker state machine, broker, client, service host, event subscriber. No libpq:
        // what needs the database is RampartDatabase.
        .target(
            name: "RampartBus",
            dependencies: ["RampartBasics",
                "ZeroMQ", "RampartProto", "RampartRPC", "RampartAPI",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/RampartBus", swiftSettings: strict),

        // Rampart's PostgreSQL layer shared by the services and the bus: database errors as RPC statuses,
        // the event outbox (written in the transaction of the change), the journal the bus publishes, and
        // the audit log's table.
        .target(
            name: "RampartDatabase",
            dependencies: [
                "RampartBasics", "ZeroMQ", "Postgres", "RampartProto", "RampartRPC", "RampartAPI", "RampartBus", "RampartAudit",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/RampartDatabase", swiftSettings: strict),

        // The append-only audit log (P9), what callers and the log share: records, filters, time parsing.
        // Its PostgreSQL table is RampartDatabase's.
        .target(
            name: "RampartAudit",
            dependencies: ["RampartBasics", "RampartProto", .product(name: "Logging", package: "swift-log")],
            path: "Shared/RampartAudit", swiftSettings: strict),

        // Backup archives: tar, manifest.json, gzip bundles, safe extraction (docs/rules.md#archives).
        .target(
            name: "RampartArchive",
            dependencies: ["RampartBasics", "CZlib", .product(name: "Crypto", package: "swift-crypto")],
            path: "Shared/RampartArchive", swiftSettings: strict),

        // Configuration trees compared: volatile lines normalised, secrets never shown, line diffs, fingerprints. Pure.
        .target(
            name: "RampartConfigDiff",
            dependencies: ["RampartBasics", "RampartArchive", .product(name: "Crypto", package: "swift-crypto")],
            path: "Shared/RampartConfigDiff", swiftSettings: strict),

        // Encryption at rest: AES-256-GCM chunk framing, data keys wrapped by a master key.
        .target(
            name: "RampartCrypto",
            dependencies: ["RampartBasics", .product(name: "Crypto", package: "swift-crypto")],
            path: "Shared/RampartCrypto", swiftSettings: strict),

        // Signed download links (L2): URL signing and checking, CSV export. Pure; no I/O.
        .target(
            name: "RampartLinks",
            dependencies: ["RampartBasics", .product(name: "Crypto", package: "swift-crypto")],
            path: "Shared/RampartLinks", swiftSettings: strict),

        // Options and logging every executable shares (the CLI and device agents too): no database.
        .target(
            name: "RampartCore",
            dependencies: [
                "RampartBus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/RampartCore", swiftSettings: strict),

        // The one way a service boots (`ServiceBoot`: logging, migrations, pool, bus key, host, service group).
        .target(
            name: "RampartServiceBoot",
            dependencies: [
                "RampartCore", "RampartBus", "Postgres", "RampartAudit", "RampartDatabase",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/RampartServiceBoot", swiftSettings: strict),

        // Executables, one folder each under Services/.
        .executableTarget(
            name: "Bus",
            dependencies: ["RampartServiceBoot", "RampartDatabase", "RampartCore", "RampartBus", "RampartAudit", "RampartProto", "RampartRPC", "RampartAPI"],
            path: "Services/Bus", swiftSettings: strict),
        .target(
            name: "InventoryService",
            dependencies: ["RampartDatabase", "RampartBasics",
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartInventory", "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/Inventory/Service", swiftSettings: strict),
        .executableTarget(
            name: "Inventory",
            dependencies: ["RampartServiceBoot", "RampartDatabase", "InventoryService", "RampartCore", "RampartAudit"],
            path: "Services/Inventory/Main", swiftSettings: strict),
        .target(
            name: "DeviceAgentCore",
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartArchive", "RampartInventory",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/DeviceAgent/Agent", swiftSettings: strict),
        .executableTarget(
            name: "DeviceAgent",
            dependencies: ["DeviceAgentCore", "RampartCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Services/DeviceAgent/Main", swiftSettings: strict),
        .target(
            name: "StorageService",
            dependencies: ["RampartDatabase", "RampartBasics",
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartCrypto", "Postgres", "RampartArchive", "RampartConfigDiff",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/Storage/Service", swiftSettings: strict),
        // Signed-link downloads over HTTP (L2): asks link-signer, streams decrypted objects.
        .target(
            name: "StorageHTTP",
            dependencies: [
                "StorageService", "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartLinks", "RampartAudit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/Storage/HTTP", swiftSettings: strict),
        .executableTarget(
            name: "Storage",
            dependencies: [
                "RampartServiceBoot", "RampartDatabase", "StorageService", "StorageHTTP", "RampartCore", "RampartAudit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/Storage/Main", swiftSettings: strict),
        .target(
            name: "LinkSignerService",
            dependencies: ["RampartDatabase", "RampartBasics",
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartLinks", "RampartCrypto", "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/LinkSigner/Service", swiftSettings: strict),
        .executableTarget(
            name: "LinkSigner",
            dependencies: [
                "RampartServiceBoot", "RampartDatabase", "LinkSignerService", "RampartCore", "RampartRPC", "RampartCrypto", "RampartLinks", "RampartAudit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/LinkSigner/Main", swiftSettings: strict),
        .target(
            name: "BackupWorkerService",
            dependencies: ["RampartDatabase", "RampartBasics",
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartInventory", "RampartArchive", "RampartConfigDiff", "Postgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/BackupWorker/Service", swiftSettings: strict),
        .executableTarget(
            name: "BackupWorker",
            dependencies: ["RampartServiceBoot", "RampartDatabase", "BackupWorkerService", "RampartCore", "RampartAudit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Services/BackupWorker/Main", swiftSettings: strict),
        .target(
            name: "RestoreCoordinatorService",
            dependencies: ["RampartDatabase", "RampartBasics",
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartInventory", "RampartArchive", "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/RestoreCoordinator/Service", swiftSettings: strict),
        .executableTarget(
            name: "RestoreCoordinator",
            dependencies: [
                "RampartServiceBoot", "RampartDatabase", "RestoreCoordinatorService", "RampartCore", "RampartAPI", "RampartAudit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/RestoreCoordinator/Main", swiftSettings: strict),
        // Notifications (P15): hooks in the `notify` schema, the journal followed per hook, webhook POSTs.
        .target(
            name: "NotifierService",
            dependencies: ["RampartDatabase", "RampartBasics", "RampartCrypto",
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartJSON", "Postgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/Notifier/Service", swiftSettings: strict),
        .executableTarget(
            name: "Notifier",
            dependencies: [
                "RampartServiceBoot", "RampartDatabase", "NotifierService", "RampartCore", "RampartAPI", "RampartAudit",
                "RampartCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/Notifier/Main", swiftSettings: strict),
        .executableTarget(
            name: "Rampart",
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartInventory", "RampartCore", "RampartArchive",
                "RampartLinks", "RampartAudit", "RampartJSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/Rampart", swiftSettings: strict),

        // Benchmarks (dev/bench.sh; results in docs/benchmarks.md).
        .executableTarget(
            name: "BusBench",
            dependencies: [
                "RampartBus", "RampartProto", "RampartRPC", "RampartAPI", "RampartLinks", "RampartArchive", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Benchmarks/BusBench", swiftSettings: strict),

        // Helpers only tests use: throwaway databases, process launching, free ports, handlers called in-process.
        .target(
            name: "RampartTesting",
            dependencies: [
                "Postgres", "RampartBasics", "RampartBus", "RampartProto", "RampartRPC", "RampartAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Shared/RampartTesting", swiftSettings: strict),

        .testTarget(
            name: "APITests",
            dependencies: ["RampartAPI", "RampartRPC", "RampartProto", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Tests/APITests"),
        .testTarget(name: "ArchiveTests", dependencies: ["RampartArchive"], path: "Tests/ArchiveTests"),
        .testTarget(name: "ConfigDiffTests", dependencies: ["RampartConfigDiff", "RampartArchive"], path: "Tests/ConfigDiffTests"),
        .testTarget(name: "BasicsTests", dependencies: ["RampartBasics"], path: "Tests/BasicsTests"),
        .testTarget(name: "CryptoTests", dependencies: ["RampartCrypto"], path: "Tests/CryptoTests"),
        .testTarget(name: "LinksTests", dependencies: ["RampartLinks"], path: "Tests/LinksTests"),
        .testTarget(
            name: "StorageTests", dependencies: ["StorageService", "StorageHTTP", "RampartAudit", "RampartTesting", "RampartAPI", "RampartRPC"],
            path: "Tests/StorageTests"),
        .testTarget(
            name: "RestoreCoordinatorTests", dependencies: ["RestoreCoordinatorService", "RampartArchive", "RampartTesting", "RampartAPI"],
            path: "Tests/RestoreCoordinatorTests"),
        .testTarget(
            name: "LinkSignerTests", dependencies: ["LinkSignerService", "RampartLinks", "RampartTesting", "RampartRPC"],
            path: "Tests/LinkSignerTests"),
        .testTarget(
            name: "DeviceAgentTests",
            dependencies: ["DeviceAgentCore", "RampartArchive", "RampartAPI", "RampartTesting", "RampartRPC", "RampartConfigDiff"],
            path: "Tests/DeviceAgentTests"),
        .testTarget(
            name: "BackupWorkerTests", dependencies: ["BackupWorkerService", "RampartTesting", "RampartAPI"],
            path: "Tests/BackupWorkerTests"),
        .testTarget(
            name: "JSONTests",
            dependencies: [
                "RampartJSON", "RampartProto", "RampartAPI", "RampartRPC",
            ],
            path: "Tests/JSONTests"),
        .testTarget(
            name: "NotifierTests",
            dependencies: [
                "NotifierService", "RampartCrypto", "RampartProto", "RampartAPI", "RampartRPC",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/NotifierTests"),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"], path: "Tests/ZeroMQTests"),
        .testTarget(name: "ServiceBootTests", dependencies: ["RampartServiceBoot"], path: "Tests/ServiceBootTests"),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "RampartTesting"], path: "Tests/PostgresTests"),
        .testTarget(
            name: "AuditTests", dependencies: ["RampartAudit", "RampartDatabase", "Postgres", "RampartTesting", "RampartAPI"], path: "Tests/AuditTests"),
        .testTarget(
            name: "BusTests", dependencies: ["RampartBus", "RampartTesting", "RampartAPI", "RampartRPC"], path: "Tests/BusTests"),
        .testTarget(
            name: "InventoryTests", dependencies: ["InventoryService", "RampartTesting", "RampartAPI", "RampartRPC", "RampartInventory"],
            path: "Tests/InventoryTests"),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "RampartDatabase", "RampartBus", "RampartProto", "RampartRPC", "RampartTesting", "ZeroMQ",
                "RampartArchive", "Postgres", "RampartLinks", "RampartAPI", "RampartAudit", "RampartJSON",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/IntegrationTests"),
    ]
)
