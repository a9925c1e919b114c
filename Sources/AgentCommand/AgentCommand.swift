// The `pgflow-agent` command, shared by the pgflow-agent executable and `pgflow agent start`.
import ArgumentParser
import Foundation
import Logging
import PGFlowAgent
import PGFlowPostgres
import ServiceLifecycle

/// `pgflow-agent --queue NAME [--queue NAME…] [--limit N] [--name NAME]`.
public struct AgentCommand: AsyncParsableCommand {
    /// The command's help.
    public static let configuration = CommandConfiguration(
        commandName: "pgflow-agent",
        abstract: "Claim and run flow runs from pgflow work queues.",
        discussion: """
            Environment: PGFLOW_DATABASE_URL (else the libpq PG* variables), PGFLOW_QUEUES (comma-separated,
            used when no --queue is given), PGFLOW_AGENT_LIMIT, PGFLOW_AGENT_NAME, PGFLOW_LOG_LEVEL.
            SIGTERM or SIGINT: stop claiming, let running work finish (--shutdown-grace), then stop it.
            """)

    @Option(name: .customLong("queue"), help: "A work queue to serve (repeatable).")
    var queues: [String] = []
    @Option(help: "Most runs executing at once.")
    var limit: Int?
    @Option(help: "The agent's name (default: host-pid).")
    var name: String?
    @Option(help: "Seconds between heartbeats.")
    var heartbeat: Double = 5
    @Option(help: "Seconds between fallback polls.")
    var poll: Double = 1
    @Option(name: .customLong("shutdown-grace"), help: "Seconds running work may take to finish on shutdown.")
    var shutdownGrace: Double = 30
    @Option(name: .customLong("kill-grace"), help: "Seconds between SIGTERM and SIGKILL when stopping a command.")
    var killGrace: Double = 5
    @Option(name: .customLong("reconcile-after"), help: "Seconds before a run this agent holds but does not execute (a lost reply) is given back or crashed.")
    var reconcileAfter: Double = 30
    @Option(name: .customLong("database-url"), help: "libpq URL (default: $PGFLOW_DATABASE_URL).")
    var databaseURL: String?

    /// Flags are parsed by ArgumentParser.
    public init() {}

    /// Runs the agent (ArgumentParser's entry point).
    public func run() async throws { try await execute() }

    /// Runs the agent until SIGTERM/SIGINT.
    public func execute() async throws {
        let env = ProcessInfo.processInfo.environment
        let level = env["PGFLOW_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "pgflow.agent")
        let url = databaseURL ?? env["PGFLOW_DATABASE_URL"] ?? ""
        let queues = !self.queues.isEmpty ? self.queues
            : (env["PGFLOW_QUEUES"] ?? "default").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let configuration = AgentConfiguration(
            queues: queues,
            name: name ?? env["PGFLOW_AGENT_NAME"],
            limit: limit ?? env["PGFLOW_AGENT_LIMIT"].flatMap(Int.init) ?? 10,
            pollInterval: .milliseconds(Int(poll * 1000)),
            heartbeatInterval: .milliseconds(Int(heartbeat * 1000)),
            killGracePeriod: .milliseconds(Int(killGrace * 1000)),
            shutdownGracePeriod: .milliseconds(Int(shutdownGrace * 1000)),
            databaseURL: url,
            reconcileAfter: .milliseconds(Int(reconcileAfter * 1000)))
        do {
            try configuration.validate()
            let pool = PostgresPool(configuration: PostgresConfiguration(url, applicationName: "pgflow-agent"), maxConnections: 4)
            // Fail fast with one clear line when the database is unreachable or lacks the schema.
            try await pool.withConnection { c in
                guard try c.query("SELECT to_regprocedure('pgflow.claim_flow_runs(uuid,text[],integer,boolean,timestamptz)') IS NOT NULL").scalar(Bool.self) else {
                    throw AgentError.configuration("the database has no current pgflow schema: run `pgflow db upgrade` (or scripts/db.sh up)")
                }
            }
            let agent = Agent(configuration: configuration, pool: pool, logger: logger)
            let group = ServiceGroup(configuration: .init(
                services: [agent], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch let error as PostgresError {
            FileHandle.standardError.write(Data("pgflow-agent: \(error)\n".utf8))
            throw ExitCode(error.kind == .connection ? 3 : 1)
        } catch let error as AgentError {
            FileHandle.standardError.write(Data("pgflow-agent: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}
