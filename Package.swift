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
        .executable(name: "bus-bench", targets: ["BusBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // C libraries (Debian packages), one system-library target each.
        .systemLibrary(name: "CZeroMQ", path: "Shared/CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(
            name: "CLibPQ", path: "Shared/CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

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

        // The bus: frames, broker state machine, client, service host, event journal.
        .target(
            name: "RampartBus",
            dependencies: [
                "ZeroMQ", "Postgres", "RampartProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/RampartBus", swiftSettings: strict),

        // Configuration, logging and start-up helpers every executable shares.
        .target(
            name: "RampartCore",
            dependencies: [
                "RampartBus", "Postgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/RampartCore", swiftSettings: strict),

        // Executables, one folder each under Services/.
        .executableTarget(
            name: "Bus",
            dependencies: ["RampartCore", "RampartBus"],
            path: "Services/Bus", swiftSettings: strict),
        .target(
            name: "InventoryService",
            dependencies: [
                "RampartBus", "RampartProto", "Postgres", .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/Inventory/Service", swiftSettings: strict),
        .executableTarget(
            name: "Inventory",
            dependencies: ["InventoryService", "RampartCore"],
            path: "Services/Inventory/Main", swiftSettings: strict),
        .executableTarget(
            name: "Rampart",
            dependencies: [
                "RampartBus", "RampartProto", "RampartCore", "InventoryService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/Rampart", swiftSettings: strict),

        // Benchmarks (dev/bench.sh; results in docs/benchmarks.md).
        .executableTarget(
            name: "BusBench",
            dependencies: ["RampartBus", "RampartProto", "ZeroMQ", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/BusBench", swiftSettings: strict),

        // Helpers only tests use: throwaway databases, process launching, free ports.
        .target(
            name: "RampartTesting",
            dependencies: ["Postgres", "RampartBus"],
            path: "Shared/RampartTesting", swiftSettings: strict),

        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"], path: "Tests/ZeroMQTests"),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "RampartTesting"], path: "Tests/PostgresTests"),
        .testTarget(
            name: "BusTests", dependencies: ["RampartBus", "RampartTesting"], path: "Tests/BusTests"),
        .testTarget(
            name: "InventoryTests", dependencies: ["InventoryService", "RampartTesting"],
            path: "Tests/InventoryTests"),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "RampartBus", "RampartProto", "RampartTesting", "ZeroMQ", "InventoryService",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/IntegrationTests"),
    ]
)
