// The `pgflow-agent` command, shared by the pgflow-agent executable and `pgflow agent start`.
import ArgumentParser
import CommandLogging
import Foundation
import Logging
import PGFlowAgent
import PGFlowPostgres
import PGFlowSecrets
import ServiceLifecycle

/// `pgflow-agent --queue NAME [--queue NAME…] [--limit N] [--name NAME]`.
public struct AgentCommand: AsyncParsableCommand {
    /// The command's help.
    public static let configuration = CommandConfiguration(
        commandName: "pgflow-agent",
        abstract: "Claim and run flow runs from pgflow work queues.",
        discussion: """
            Environment: PGFLOW_DATABASE_URL (else the libpq PG* variables), PGFLOW_QUEUES (comma-separated,
            used when no --queue is given), PGFLOW_AGENT_LIMIT, PGFLOW_AGENT_NAME, PGFLOW_LOG_LEVEL,
            PGFLOW_HEARTBEAT_TIMEOUT (as --heartbeat-timeout), PGFLOW_LISTEN_DATABASE_URL (as
            --listen-database-url).
            SIGTERM or SIGINT: stop claiming, let running work finish (--shutdown-grace), then stop it.

            At most one live attempt: each command runs in its own process group under a supervisor
            process that kills the whole group when the agent dies, or when the agent has not heartbeated
            successfully for --fence-timeout (frozen, or cut off from the database). The agent refuses to
            start unless --heartbeat + --fence-timeout + --kill-grace + 5 s is below --heartbeat-timeout,
            which must be the scheduler's --heartbeat-timeout (default 60 s): then a run's processes are
            gone before the reaper hands it to another agent.

            Commands get a minimal environment: PATH, HOME, LANG, LC_*, TZ, TMPDIR, USER, LOGNAME, SHELL,
            the variables named by --pass-env, and the run's PGFLOW_* variables (PGFLOW_FLOW_RUN_ID,
            PGFLOW_FLOW_RUN_NAME, PGFLOW_RUN_COUNT, PGFLOW_PARAMETERS_FILE, PGFLOW_PARAMETERS when the
            parameters are at most 32 KiB, PGFLOW_DATABASE_URL). The parameters also arrive on stdin.
            """)

    @Option(name: .customLong("queue"), help: "A work queue to serve (repeatable).")
    var queues: [String] = []
    @Option(help: "Most runs executing at once.")
    var limit: Int?
    @Option(help: "The agent's name (default: host-pid).")
    var name: String?
    @Option(help: "Seconds between heartbeats (0.05 to 3600).")
    var heartbeat: Double = 5
    @Option(help: "Seconds between fallback polls (0.01 to 3600).")
    var poll: Double = 1
    @Option(name: .customLong("shutdown-grace"), help: "Seconds running work may take to finish on shutdown.")
    var shutdownGrace: Double = 30
    @Option(name: .customLong("kill-grace"), help: "Seconds between SIGTERM and SIGKILL when stopping a command.")
    var killGrace: Double = 5
    @Option(name: .customLong("reconcile-after"), help: "Seconds before a run this agent holds but does not execute (a lost reply) is given back or crashed.")
    var reconcileAfter: Double = 30
    @Option(name: .customLong("fence-timeout"), help: "Seconds without a successful heartbeat after which a command's process group is killed.")
    var fenceTimeout: Double = 20
    @Option(name: .customLong("heartbeat-timeout"), help: "The scheduler reaper's --heartbeat-timeout in seconds (default: $PGFLOW_HEARTBEAT_TIMEOUT, else 60).")
    var heartbeatTimeout: Double?
    @Option(name: .customLong("pass-env"), help: "An environment variable of the agent that commands also get (repeatable).")
    var passEnv: [String] = []
    @Option(name: .customLong("command-database-url"), help: "The PGFLOW_DATABASE_URL commands get (default: the agent's own URL). Give the URL of a less-privileged role than the agent's: commands are user code.")
    var commandDatabaseURL: String?
    @Option(name: .customLong("database-url"), help: "libpq URL (default: $PGFLOW_DATABASE_URL).")
    var databaseURL: String?
    @Flag(name: .customLong("no-push"), help: "Take no pushed runs: claim every run from its queue (an idle agent otherwise offers its capacity and run_deployment hands it due runs directly).")
    var noPush = false
    @Option(name: .customLong("listen-database-url"), help: "libpq URL of the LISTEN connection (default: $PGFLOW_LISTEN_DATABASE_URL, else the database URL). Behind a transaction-mode PgBouncer: PostgreSQL's own URL (LISTEN needs a session).")
    var listenDatabaseURL: String?

    /// Flags are parsed by ArgumentParser.
    public init() {}

    /// Runs the agent (ArgumentParser's entry point).
    public func run() async throws { try await execute() }

    /// Runs the agent until SIGTERM/SIGINT.
    public func execute() async throws {
        let env = ProcessInfo.processInfo.environment
        let logger = bootstrapCommandLogging(label: "pgflow.agent")
        let configuration: AgentConfiguration
        do {
            configuration = try makeConfiguration(env)
            try configuration.validate()
        } catch let error as AgentError {
            FileHandle.standardError.write(Data("pgflow-agent: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let url = configuration.databaseURL
        do {
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

    /// The configuration from the flags and the environment; one line naming a bad value.
    func makeConfiguration(_ env: [String: String]) throws(AgentError) -> AgentConfiguration {
        let queues = !self.queues.isEmpty ? self.queues
            : (env["PGFLOW_QUEUES"] ?? "default").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var limit = 10
        if let value = self.limit {
            limit = value
        } else if let text = env["PGFLOW_AGENT_LIMIT"] {
            guard let n = Int(text) else { throw .configuration("PGFLOW_AGENT_LIMIT must be a whole number, got \(text.debugDescription)") }
            limit = n
        }
        guard (1...100_000).contains(limit) else { throw .configuration("--limit must be between 1 and 100000, got \(limit)") }
        var heartbeatTimeout = 60.0
        if let value = self.heartbeatTimeout {
            heartbeatTimeout = value
        } else if let text = env["PGFLOW_HEARTBEAT_TIMEOUT"] {
            guard let n = Double(text) else { throw .configuration("PGFLOW_HEARTBEAT_TIMEOUT must be seconds, got \(text.debugDescription)") }
            heartbeatTimeout = n
        }
        for name in passEnv where name.isEmpty || name.contains("=") {
            throw .configuration("--pass-env takes a variable name, got \(name.debugDescription)")
        }
        return AgentConfiguration(
            queues: queues,
            name: name ?? env["PGFLOW_AGENT_NAME"],
            limit: limit,
            pollInterval: try seconds(poll, "--poll", 0.01...3600),
            heartbeatInterval: try seconds(heartbeat, "--heartbeat", 0.05...3600),
            killGracePeriod: try seconds(killGrace, "--kill-grace", 0...3600),
            shutdownGracePeriod: try seconds(shutdownGrace, "--shutdown-grace", 0...86_400),
            databaseURL: databaseURL ?? env["PGFLOW_DATABASE_URL"] ?? "",
            listenDatabaseURL: listenDatabaseURL ?? env["PGFLOW_LISTEN_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 },
            commandDatabaseURL: commandDatabaseURL,
            passEnvironment: passEnv,
            reconcileAfter: try seconds(reconcileAfter, "--reconcile-after", 0...86_400),
            fenceTimeout: try seconds(fenceTimeout, "--fence-timeout", 0.5...3600),
            heartbeatTimeout: try seconds(heartbeatTimeout, "--heartbeat-timeout", 1...86_400 * 7),
            secretKey: try secretKey(env), takesPushes: !noPush)
    }

    /// The secret key from PGFLOW_SECRET_KEY or PGFLOW_SECRET_KEY_FILE; nil when neither is set (runs
    /// of deployments with secrets then fail, saying so); an unusable key stops the agent at start.
    func secretKey(_ env: [String: String]) throws(AgentError) -> SecretKey? {
        do {
            return try SecretKey.fromEnvironment(env)
        } catch SecretError.noKey {
            return nil
        } catch {
            throw .configuration("\(error)")
        }
    }
}

/// A flag's seconds as a Duration: finite and within `range`, else one line naming the flag.
func seconds(_ value: Double, _ flag: String, _ range: ClosedRange<Double>) throws(AgentError) -> Duration {
    guard value.isFinite, range.contains(value) else {
        throw .configuration("\(flag) must be a number of seconds from \(range.lowerBound) to \(range.upperBound), got \(value)")
    }
    return .nanoseconds(Int64((value * 1e9).rounded()))
}
