// swift-tools-version:6.0
// pgflow: a workflow orchestrator in which PostgreSQL is the orchestrator.
//
// Layers, top imports bottom (see DESIGN.md):
//   executables  pgflow · pgflow-agent · pgflow-scheduler · pgflow-api
//   services     PGFlowAgent · PGFlowScheduler
//   SDK          PGFlow
//   client       PGFlowClient        (typed calls of the SQL API)
//   postgres     PGFlowPostgres      (libpq: connections, pool, binding, decoding, LISTEN/NOTIFY, pipelines)
//   system       CLibPQ              (libpq-fe.h, from Debian's libpq-dev)
import PackageDescription

let package = Package(
    name: "pgflow",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PGFlowPostgres", targets: ["PGFlowPostgres"]),
        .library(name: "PGFlowClient", targets: ["PGFlowClient"]),
        .executable(name: "pgflow", targets: ["pgflow"]),
        .executable(name: "pgflow-agent", targets: ["pgflow-agent"]),
        .executable(name: "pgflow-scheduler", targets: ["pgflow-scheduler"]),
        .executable(name: "pgflow-api", targets: ["pgflow-api"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev", "pkg-config"])]
        ),
        .target(name: "PGFlowPostgres", dependencies: ["CLibPQ"]),
        .target(name: "PGFlowClient", dependencies: ["PGFlowPostgres"]),
        .target(name: "PGFlowSchedule"),
        .target(name: "CPGFlowSpawn"),
        .target(
            name: "PGFlowAgent",
            dependencies: [
                "PGFlowClient", "CPGFlowSpawn",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "pgflow",
            dependencies: [
                "PGFlowClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "AgentCommand",
            dependencies: [
                "PGFlowAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "pgflow-agent", dependencies: ["AgentCommand"]),
        .executableTarget(
            name: "pgflow-scheduler",
            dependencies: [
                "PGFlowClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "pgflow-api", dependencies: ["PGFlowClient"]),
        .executableTarget(name: "pgflow-bench", dependencies: ["PGFlowPostgres"]),
        .target(name: "PGFlowTestSupport", dependencies: ["PGFlowPostgres"], path: "Tests/PGFlowTestSupport"),
        .testTarget(name: "PGFlowPostgresTests", dependencies: ["PGFlowPostgres", "PGFlowTestSupport"]),
        .testTarget(name: "PGFlowScheduleTests", dependencies: ["PGFlowSchedule"]),
        .testTarget(name: "PGFlowClientTests", dependencies: ["PGFlowClient", "PGFlowTestSupport"]),
    ]
)
