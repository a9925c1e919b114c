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
        .library(name: "PGFlow", targets: ["PGFlow"]),
        .executable(name: "pgflow", targets: ["pgflow"]),
        .executable(name: "pgflow-agent", targets: ["pgflow-agent"]),
        .executable(name: "pgflow-scheduler", targets: ["pgflow-scheduler"]),
        .executable(name: "pgflow-api", targets: ["pgflow-api"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
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
        .target(name: "PGFlow", dependencies: ["PGFlowClient", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "pgflow-bench-sdk", dependencies: ["PGFlow"]),
        .executableTarget(name: "pgflow-examples", dependencies: ["PGFlow"], path: "Examples"),
        .target(name: "CPGFlowSpawn"),
        .target(
            name: "PGFlowAgent",
            dependencies: [
                "PGFlowClient", "PGFlow", "CPGFlowSpawn",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "pgflow",
            dependencies: [
                "PGFlowClient", "PGFlowSchedule", "AgentCommand", "SchedulerCommand",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(name: "CommandLogging", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(
            name: "AgentCommand",
            dependencies: [
                "PGFlowAgent", "CommandLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "pgflow-agent", dependencies: ["AgentCommand"]),
        .target(
            name: "PGFlowScheduler",
            dependencies: [
                "PGFlowClient", "PGFlowSchedule",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "SchedulerCommand",
            dependencies: [
                "PGFlowScheduler", "CommandLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "pgflow-scheduler", dependencies: ["SchedulerCommand"]),
        .executableTarget(name: "pgflow-api", dependencies: ["PGFlowClient"]),
        .executableTarget(name: "pgflow-bench", dependencies: ["PGFlowPostgres"]),
        .executableTarget(
            name: "pgflow-bench-agent",
            dependencies: ["PGFlowAgent", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]
        ),
        .target(name: "PGFlowTestSupport", dependencies: ["PGFlowPostgres"], path: "Tests/PGFlowTestSupport"),
        .testTarget(name: "PGFlowPostgresTests", dependencies: ["PGFlowPostgres", "PGFlowTestSupport"]),
        .testTarget(name: "PGFlowScheduleTests", dependencies: ["PGFlowSchedule"]),
        .testTarget(name: "PGFlowAgentTests", dependencies: ["PGFlowAgent", "PGFlowTestSupport"]),
        .testTarget(
            name: "PGFlowTests",
            dependencies: [
                "PGFlow", "PGFlowAgent", "PGFlowClient", "PGFlowTestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "PGFlowClientTests", dependencies: ["PGFlowClient", "PGFlowTestSupport"]),
        .testTarget(
            name: "PGFlowSchedulerTests",
            dependencies: [
                "PGFlowScheduler", "PGFlowClient", "PGFlowTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "CLITests", dependencies: ["PGFlowPostgres", "PGFlowTestSupport"]),
    ]
)
