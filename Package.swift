// swift-tools-version:6.0
// pgflow: a workflow orchestrator in which PostgreSQL is the orchestrator.
//
// Layers, top imports bottom (docs/architecture.md says what each holds and why):
//   executables  pgflow · pgflow-agent · pgflow-scheduler · pgflow-api
//   commands     AgentCommand · SchedulerCommand · PGFlowCLIKit (CLI logic) · PGFlowDeploy (pgflow.yaml)
//   services     PGFlowAgent · PGFlowScheduler
//   SDK          PGFlow
//   secrets      PGFlowSecrets       (client-side AES-GCM for secrets; the key never reaches the database)
//   client       PGFlowClient        (typed calls of the SQL API, the migrator)
//   postgres     PGFlowPostgres      (libpq: connections, pool, binding, decoding, LISTEN/NOTIFY, pipelines)
//   pure logic   PGFlowSchedule · CivilCalendar
//   system       CLibPQ              (libpq-fe.h, from Debian's libpq-dev)
import PackageDescription

let package = Package(
    name: "pgflow",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PGFlowPostgres", targets: ["PGFlowPostgres"]),
        .library(name: "PGFlowClient", targets: ["PGFlowClient"]),
        .library(name: "PGFlow", targets: ["PGFlow"]),
        .library(name: "PGFlowSecrets", targets: ["PGFlowSecrets"]),
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
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // The HTTP API only (PGFlowAPI, pgflow-api): the agent and CLI targets never depend on these.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev", "pkg-config"])]
        ),
        .target(name: "CivilCalendar"),
        .target(name: "PGFlowPostgres", dependencies: ["CLibPQ", "CivilCalendar"]),
        .target(name: "PGFlowClient", dependencies: ["PGFlowPostgres"]),
        .target(name: "PGFlowSchedule", dependencies: ["CivilCalendar"]),
        .target(name: "PGFlowSecrets", dependencies: ["PGFlowClient", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "PGFlow",
            dependencies: [
                "PGFlowClient", "PGFlowSecrets", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "pgflow-bench-sdk", dependencies: ["PGFlow"]),
        // the SDK's crash test kills this flow process (Tests/PGFlowTests/TaskBatchingTests.swift)
        .executableTarget(name: "pgflow-sdk-probe", dependencies: ["PGFlow"], path: "Tests/SDKProbe"),
        .executableTarget(name: "pgflow-examples", dependencies: ["PGFlow"], path: "Examples"),
        .target(name: "CPGFlowSpawn"),
        // libcurl (Debian's libcurl4-openssl-dev) for the scheduler's http/https webhook notifications
        .target(name: "CPGFlowHTTP", linkerSettings: [.linkedLibrary("curl")]),
        .target(
            name: "PGFlowAgent",
            dependencies: [
                "PGFlowClient", "PGFlow", "CPGFlowSpawn", "PGFlowSecrets",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "PGFlowDeploy",
            dependencies: ["PGFlowClient", "PGFlowSchedule", .product(name: "Yams", package: "Yams")]
        ),
        .target(name: "PGFlowCLIKit", dependencies: ["PGFlowClient", "PGFlowPostgres", "PGFlowDeploy"]),
        .executableTarget(
            name: "pgflow",
            dependencies: [
                "PGFlowClient", "PGFlowCLIKit", "PGFlowDeploy", "PGFlowSecrets", "AgentCommand", "SchedulerCommand",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "CommandLogging", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(
            name: "AgentCommand",
            dependencies: [
                "PGFlowAgent", "PGFlowSecrets", "CommandLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "pgflow-agent", dependencies: ["AgentCommand"]),
        .target(
            name: "PGFlowScheduler",
            dependencies: [
                "PGFlowClient", "PGFlowSchedule", "PGFlowSecrets", "CPGFlowHTTP", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "SchedulerCommand",
            dependencies: [
                "PGFlowScheduler", "PGFlowSecrets", "CommandLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "pgflow-scheduler", dependencies: ["SchedulerCommand"]),
        .target(
            name: "PGFlowAPI",
            dependencies: [
                "PGFlowClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "pgflow-api",
            dependencies: [
                "PGFlowAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "pgflow-bench", dependencies: ["PGFlowPostgres"]),
        .executableTarget(
            name: "pgflow-bench-agent",
            dependencies: ["PGFlowAgent", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]
        ),
        .target(name: "PGFlowTestSupport", dependencies: ["PGFlowPostgres"], path: "Tests/PGFlowTestSupport"),
        .testTarget(name: "PGFlowPostgresTests", dependencies: ["PGFlowPostgres", "PGFlowTestSupport"]),
        .testTarget(name: "PGFlowScheduleTests", dependencies: ["PGFlowSchedule"]),
        .testTarget(
            name: "PGFlowAgentTests",
            dependencies: ["PGFlowAgent", "CPGFlowSpawn", "PGFlowSecrets", "PGFlowTestSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "PGFlowTests",
            dependencies: [
                "PGFlow", "PGFlowAgent", "PGFlowClient", "PGFlowSecrets", "PGFlowTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "PGFlowSecretsTests", dependencies: ["PGFlowSecrets", "PGFlowClient", "PGFlowTestSupport"]),
        .testTarget(name: "PGFlowClientTests", dependencies: ["PGFlowClient", "PGFlowSchedule", "PGFlowTestSupport"]),
        .testTarget(
            name: "PGFlowSchedulerTests",
            dependencies: [
                "PGFlowScheduler", "PGFlowClient", "PGFlowTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "CLITests", dependencies: ["PGFlowPostgres", "PGFlowTestSupport"]),
        .testTarget(name: "PGFlowDeployTests", dependencies: ["PGFlowDeploy", "PGFlowClient", "PGFlowTestSupport"]),
        .testTarget(name: "PGFlowCLIKitTests", dependencies: ["PGFlowCLIKit", "PGFlowClient", "PGFlowTestSupport"]),
        .testTarget(name: "PGFlowAPITests", dependencies: ["PGFlowAPI", "PGFlowClient", "PGFlowTestSupport"]),
    ]
)
