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
        .executable(name: "bus-bench", targets: ["BusBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
    ],
    targets: [
        // C libraries (Debian packages), one system-library target each.
        .systemLibrary(name: "CZeroMQ", path: "Shared/CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(
            name: "CLibPQ", path: "Shared/CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CZlib", path: "Shared/CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Small helpers every layer shares: epoch milliseconds (one rounding rule), hex of bytes.
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

        // The bus: frames, broker state machine, client, service host, event journal.
        .target(
            name: "RampartBus",
            dependencies: ["RampartBasics",
                "ZeroMQ", "Postgres", "RampartProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/RampartBus", swiftSettings: strict),

        // The append-only audit log (P9): records, PostgreSQL storage, filters, API names.
        .target(
            name: "RampartAudit",
            dependencies: ["RampartBasics", "Postgres", "RampartProto", "RampartBus", .product(name: "Logging", package: "swift-log")],
            path: "Shared/RampartAudit", swiftSettings: strict),

        // Backup archives: tar, manifest.json, gzip bundles, safe extraction (docs/rules.md#archives).
        .target(
            name: "RampartArchive",
            dependencies: ["RampartBasics", "CZlib", .product(name: "Crypto", package: "swift-crypto")],
            path: "Shared/RampartArchive", swiftSettings: strict),

        // Encryption at rest: AES-256-GCM chunk framing, data keys wrapped by a master key.
        .target(
            name: "RampartCrypto",
            dependencies: ["RampartBasics", .product(name: "Crypto", package: "swift-crypto")],
            path: "Shared/RampartCrypto", swiftSettings: strict),

        // Signed download links (L2): URL signing and checking, CSV export. Pure; no I/O.
        .target(
            name: "RampartLinks",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            path: "Shared/RampartLinks", swiftSettings: strict),

        // Service and method names of services that several executables call. No dependencies.
        .target(name: "RampartAPI", path: "Shared/RampartAPI", swiftSettings: strict),

        // Configuration, logging and start-up helpers every executable shares; the one way a service
        // boots (`ServiceBoot`: logging, migrations, pool, bus key, host, service group).
        .target(
            name: "RampartCore",
            dependencies: [
                "RampartBus", "Postgres", "RampartAudit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/RampartCore", swiftSettings: strict),

        // Executables, one folder each under Services/.
        .executableTarget(
            name: "Bus",
            dependencies: ["RampartCore", "RampartBus", "RampartAudit", "RampartProto", "RampartAPI"],
            path: "Services/Bus", swiftSettings: strict),
        .target(
            name: "InventoryService",
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartAPI", "Postgres", .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/Inventory/Service", swiftSettings: strict),
        .executableTarget(
            name: "Inventory",
            dependencies: ["InventoryService", "RampartCore", "RampartAudit"],
            path: "Services/Inventory/Main", swiftSettings: strict),
        .target(
            name: "DeviceAgentCore",
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartArchive", "InventoryService", "RampartAPI",
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
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartCrypto", "RampartAPI", "Postgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/Storage/Service", swiftSettings: strict),
        // Signed-link downloads over HTTP (L2): asks link-signer, streams decrypted objects.
        .target(
            name: "StorageHTTP",
            dependencies: [
                "StorageService", "RampartBus", "RampartProto", "RampartLinks", "RampartAudit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/Storage/HTTP", swiftSettings: strict),
        .executableTarget(
            name: "Storage",
            dependencies: [
                "StorageService", "StorageHTTP", "RampartCore", "RampartAudit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/Storage/Main", swiftSettings: strict),
        .target(
            name: "LinkSignerService",
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartLinks", "RampartCrypto", "Postgres", "InventoryService",
                "BackupWorkerService",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/LinkSigner/Service", swiftSettings: strict),
        .executableTarget(
            name: "LinkSigner",
            dependencies: [
                "LinkSignerService", "RampartCore", "RampartCrypto", "RampartLinks", "RampartAudit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/LinkSigner/Main", swiftSettings: strict),
        .target(
            name: "BackupWorkerService",
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartArchive", "RampartAPI", "Postgres", "InventoryService",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/BackupWorker/Service", swiftSettings: strict),
        .executableTarget(
            name: "BackupWorker",
            dependencies: ["BackupWorkerService", "RampartCore", "RampartAudit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Services/BackupWorker/Main", swiftSettings: strict),
        .target(
            name: "RestoreCoordinatorService",
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartAPI", "RampartArchive", "Postgres", "InventoryService",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/RestoreCoordinator/Service", swiftSettings: strict),
        .executableTarget(
            name: "RestoreCoordinator",
            dependencies: [
                "RestoreCoordinatorService", "RampartCore", "RampartAPI", "RampartAudit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/RestoreCoordinator/Main", swiftSettings: strict),
        .executableTarget(
            name: "Rampart",
            dependencies: ["RampartBasics",
                "RampartBus", "RampartProto", "RampartCore", "InventoryService", "BackupWorkerService", "RampartArchive",
            "RampartLinks", "RampartAPI", "RestoreCoordinatorService", "RampartAudit", "RampartJSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/Rampart", swiftSettings: strict),

        // Benchmarks (dev/bench.sh; results in docs/benchmarks.md).
        .executableTarget(
            name: "BusBench",
            dependencies: [
                "RampartBus", "RampartProto", "RampartLinks", "RampartAPI", "RampartArchive", "InventoryService", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Benchmarks/BusBench", swiftSettings: strict),

        // Helpers only tests use: throwaway databases, process launching, free ports, handlers called in-process.
        .target(
            name: "RampartTesting",
            dependencies: [
                "Postgres", "RampartBus", "RampartProto", .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Shared/RampartTesting", swiftSettings: strict),

        .testTarget(name: "ArchiveTests", dependencies: ["RampartArchive"], path: "Tests/ArchiveTests"),
        .testTarget(name: "BasicsTests", dependencies: ["RampartBasics"], path: "Tests/BasicsTests"),
        .testTarget(name: "CryptoTests", dependencies: ["RampartCrypto"], path: "Tests/CryptoTests"),
        .testTarget(name: "LinksTests", dependencies: ["RampartLinks"], path: "Tests/LinksTests"),
        .testTarget(
            name: "StorageTests", dependencies: ["StorageService", "StorageHTTP", "RampartAudit", "RampartTesting"],
            path: "Tests/StorageTests"),
        .testTarget(
            name: "RestoreCoordinatorTests", dependencies: ["RestoreCoordinatorService", "RampartArchive", "RampartTesting"],
            path: "Tests/RestoreCoordinatorTests"),
        .testTarget(
            name: "LinkSignerTests", dependencies: ["LinkSignerService", "RampartLinks", "RampartTesting"],
            path: "Tests/LinkSignerTests"),
        .testTarget(
            name: "DeviceAgentTests", dependencies: ["DeviceAgentCore", "RampartArchive", "RampartAPI", "RampartTesting"],
            path: "Tests/DeviceAgentTests"),
        .testTarget(
            name: "BackupWorkerTests", dependencies: ["BackupWorkerService", "RampartTesting"],
            path: "Tests/BackupWorkerTests"),
        .testTarget(
            name: "JSONTests",
            dependencies: [
                "RampartJSON", "RampartProto", "InventoryService", "BackupWorkerService", "RestoreCoordinatorService",
            ],
            path: "Tests/JSONTests"),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"], path: "Tests/ZeroMQTests"),
        .testTarget(name: "CoreTests", dependencies: ["RampartCore"], path: "Tests/CoreTests"),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "RampartTesting"], path: "Tests/PostgresTests"),
        .testTarget(
            name: "AuditTests", dependencies: ["RampartAudit", "Postgres", "RampartTesting"], path: "Tests/AuditTests"),
        .testTarget(
            name: "BusTests", dependencies: ["RampartBus", "RampartTesting"], path: "Tests/BusTests"),
        .testTarget(
            name: "InventoryTests", dependencies: ["InventoryService", "RampartTesting"],
            path: "Tests/InventoryTests"),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "RampartBus", "RampartProto", "RampartTesting", "ZeroMQ", "InventoryService", "BackupWorkerService",
                "RampartArchive", "Postgres", "RampartLinks", "RampartAPI", "RampartAudit", "RampartJSON",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/IntegrationTests"),
    ]
)
