// The `pgflow-scheduler` command, shared by the pgflow-scheduler executable and `pgflow scheduler start`.
import ArgumentParser
import CommandLogging
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import PGFlowScheduler
import PGFlowSecrets
import ServiceLifecycle

/// `pgflow-scheduler [--horizon S] [--max-runs N] [--late-after S] [--retention-days D] …`.
public struct SchedulerCommand: AsyncParsableCommand {
    /// The command's help.
    public static let configuration = CommandConfiguration(
        commandName: "pgflow-scheduler",
        abstract: "Materialise scheduled runs and run pgflow's maintenance duties.",
        discussion: """
            Duties: schedules (runs created ahead, changed schedules replaced), late runs and the missed-run
            policy, the reaper (dead agents, expired slot leases), pause expiry, retention, and waking agents
            when scheduled runs fall due; events: automations (the evaluator), webhook notifications, event
            partitions (--events-only runs just these, --no-events none of them). Stateless and leaderless:
            run as many as you like.
            Environment: PGFLOW_DATABASE_URL (else the libpq PG* variables), PGFLOW_LISTEN_DATABASE_URL (as
            --listen-database-url), PGFLOW_LOG_LEVEL.
            SIGTERM or SIGINT: finish the current pass and stop.
            """)

    @Option(help: "Seconds ahead to create scheduled runs.")
    var horizon: Double = 86_400
    @Option(name: .customLong("max-runs"), help: "Most future runs per schedule.")
    var maxRuns: Int = 100
    @Option(name: .customLong("min-runs"), help: "Fewest future runs per schedule (looking up to 100 days ahead).")
    var minRuns: Int = 3
    @Option(name: .customLong("schedule-interval"), help: "Seconds between schedule passes.")
    var scheduleInterval: Double = 10
    @Option(name: .customLong("late-after"), help: "Seconds past its start after which a Scheduled run is Late.")
    var lateAfter: Double = 15
    @Option(name: .customLong("missed-after"), help: "Seconds past its start after which a waiting scheduled run counts as missed.")
    var missedAfter: Double = 300
    @Option(name: .customLong("missed-runs"), help: "Missed-run policy of deployments that set none: run_all, latest or skip.")
    var missedRuns: String = "run_all"
    @Option(name: .customLong("max-missed-runs"), help: "After an outage, the most missed runs a run_all schedule gets back (newest first).")
    var maxMissedRuns: Int = 100
    @Option(name: .customLong("heartbeat-timeout"), help: "Seconds without a heartbeat after which an agent is dead (default: $PGFLOW_HEARTBEAT_TIMEOUT, else 60; agents read the same variable).")
    var heartbeatTimeout: Double?
    @Option(name: .customLong("retention-days"), help: "Delete finished runs older than this many days, by whole UTC weeks: a run goes between D and D + 7 days after it ended (0: keep everything).")
    var retentionDays: Double = 30
    @Flag(name: .customLong("no-wake"), help: "Do not NOTIFY agents when scheduled runs fall due (they poll).")
    var noWake = false
    @Flag(name: .customLong("events-only"), help: "Run only the event duties (automations, notifications, event partitions).")
    var eventsOnly = false
    @Flag(name: .customLong("no-events"), help: "Do not evaluate automations, send notifications or keep event partitions.")
    var noEvents = false
    @Option(name: .customLong("event-retention-days"), help: "Drop events older than this many days.")
    var eventRetentionDays: Double = 7
    @Option(name: .customLong("event-batch-size"), help: "Events the evaluator reads per transaction.")
    var eventBatchSize: Int = 1000
    @Option(name: .customLong("notify-ca-file"), help: "PEM bundle of certificate authorities trusted for https notification targets instead of the system's (default: $PGFLOW_NOTIFY_CA_FILE).")
    var notifyCAFile: String?
    @Flag(help: "Run every duty once, print what each did and how long it took, and exit (for cron jobs and benchmarks).")
    var once = false
    @Option(name: .customLong("database-url"), help: "libpq URL (default: $PGFLOW_DATABASE_URL).")
    var databaseURL: String?
    @Option(name: .customLong("listen-database-url"), help: "libpq URL of the LISTEN connections (default: $PGFLOW_LISTEN_DATABASE_URL, else the database URL). Behind a transaction-mode PgBouncer: PostgreSQL's own URL (LISTEN needs a session).")
    var listenDatabaseURL: String?

    /// Flags are parsed by ArgumentParser.
    public init() {}

    /// Runs the scheduler (ArgumentParser's entry point).
    public func run() async throws { try await execute() }

    /// The configuration the flags describe.
    public func schedulerConfiguration(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> SchedulerConfiguration {
        var c = SchedulerConfiguration()
        c.materializer.window.horizon = horizon
        c.materializer.window.maxRuns = maxRuns
        c.materializer.window.minRuns = minRuns
        c.materializer.interval = scheduleInterval
        c.lateRuns.lateThreshold = lateAfter
        c.lateRuns.missedGrace = missedAfter
        guard let policy = MissedRunPolicy(text: missedRuns) else {
            throw SchedulerConfigurationError("unknown missed-run policy \"\(missedRuns)\": use run_all, latest or skip")
        }
        c.lateRuns.defaultMissedRunPolicy = policy
        c.materializer.defaultMissedRunPolicy = policy
        c.materializer.window.maxMissedRuns = maxMissedRuns
        if let heartbeatTimeout {
            c.reaper.heartbeatTimeout = heartbeatTimeout
        } else if let text = env["PGFLOW_HEARTBEAT_TIMEOUT"] {
            // the agents' fence is checked against this same variable: one setting for both sides
            guard let seconds = Double(text) else {
                throw SchedulerConfigurationError("PGFLOW_HEARTBEAT_TIMEOUT must be seconds, got \(text.debugDescription)")
            }
            c.reaper.heartbeatTimeout = seconds
        }
        if retentionDays == 0 {
            c.retention = nil
        } else {
            c.retention?.maxAge = retentionDays * 86_400
        }
        if noWake { c.dueRunNotifier = nil }
        c.eventsOnly = eventsOnly
        if noEvents {
            c.events = nil
            c.notifications = nil
            c.eventMaintenance = nil
        }
        c.eventMaintenance?.retention = eventRetentionDays * 86_400
        c.events?.batchSize = eventBatchSize
        if let url = listenDatabaseURL ?? env["PGFLOW_LISTEN_DATABASE_URL"], !url.isEmpty {
            c.events?.listenDatabaseURL = url
            c.notifications?.listenDatabaseURL = url
        }
        if let file = notifyCAFile ?? env["PGFLOW_NOTIFY_CA_FILE"], !file.isEmpty {
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw SchedulerConfigurationError("cannot read the notification CA file \(file): pass a readable PEM file to --notify-ca-file")
            }
            c.notifications?.caFile = file
        }
        if env[SecretKey.environmentVariable] != nil || env[SecretKey.fileEnvironmentVariable] != nil {
            do { c.notifications?.secretKey = try SecretKey.fromEnvironment(env) } catch {
                throw SchedulerConfigurationError("\(error)")
            }
        }
        try c.validate()
        return c
    }

    /// Runs the scheduler until SIGTERM/SIGINT.
    public func execute() async throws {
        let logger = bootstrapCommandLogging(label: "pgflow.scheduler")
        do {
            let configuration = try schedulerConfiguration()
            let postgres = databaseURL.map { PostgresConfiguration($0, applicationName: "pgflow-scheduler") }
                ?? .fromEnvironment(applicationName: "pgflow-scheduler")
            let pool = PostgresPool(configuration: postgres, maxConnections: 8)
            try await pool.withConnection { c in
                guard try c.query("SELECT to_regprocedure('pgflow.schedule_flow_runs(uuid,timestamptz[],timestamptz)') IS NOT NULL").scalar(Bool.self) else {
                    throw SchedulerConfigurationError("the database has no current pgflow schema: run `pgflow db upgrade` (or scripts/db.sh up)")
                }
            }
            if once { return try await runOnce(configuration, pool: pool, logger: logger) }
            logger.info("scheduler started")
            let group = ServiceGroup(configuration: .init(
                services: configuration.services(pool: pool, logger: logger).map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            logger.info("scheduler stopped")
        } catch let error as PostgresError {
            FileHandle.standardError.write(Data("pgflow-scheduler: \(error)\n".utf8))
            throw ExitCode(error.kind == .connection ? 3 : 1)
        } catch let error as SchedulerConfigurationError {
            FileHandle.standardError.write(Data("pgflow-scheduler: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// `--once`: each duty's one pass, timed, one line each.
    private func runOnce(_ c: SchedulerConfiguration, pool: PostgresPool, logger: Logger) async throws {
        let clock = ContinuousClock()
        for duty in c.duties(pool: pool, logger: logger) {
            var line = ""
            let elapsed = try await clock.measure { line = try await duty.runOnce() }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("\(duty.name): \(line) in \(String(format: "%.3f", seconds)) s")
        }
    }
}
