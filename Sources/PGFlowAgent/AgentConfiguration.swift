// PGFlowAgent: the process users run many of. It claims due flow runs from PostgreSQL
// (pgflow.claim_flow_runs), runs them as subprocesses or in-process Swift flows, writes their states
// and logs in batches, heartbeats, obeys cancellations, and shuts down without stranding a run.
import Foundation
import PGFlowSecrets

/// How an agent behaves. Every field has a default suited to production.
public struct AgentConfiguration: Sendable {
    /// Work queues to serve (at least one).
    public var queues: [String]
    /// The agent's name in `pgflow.agents` (default: host name and pid).
    public var name: String
    /// Most runs executing at once.
    public var limit: Int
    /// Most runs claimed in one call.
    public var claimBatch: Int
    /// Fallback poll period (NOTIFY makes pickup fast; the poll finds future-scheduled and missed runs).
    public var pollInterval: Duration
    /// Heartbeat period (the reaper's timeout should be several of these).
    public var heartbeatInterval: Duration
    /// Time between SIGTERM and SIGKILL when a command run is cancelled, times out or is fenced.
    public var killGracePeriod: Duration
    /// On shutdown, how long running work may take to finish before it is stopped.
    public var shutdownGracePeriod: Duration
    /// The agent's database URL (empty: libpq's `PG*` environment).
    public var databaseURL: String
    /// The URL of the LISTEN connection (nil: `databaseURL`). LISTEN needs a session of its own: behind
    /// a transaction-mode PgBouncer, give the pool PgBouncer's URL and this one PostgreSQL's (or a
    /// session-mode pool's).
    public var listenDatabaseURL: String?
    /// The URL handed to command runs as `PGFLOW_DATABASE_URL` (nil: `databaseURL`). Operators should
    /// give a less-privileged role's URL here: commands are user code.
    public var commandDatabaseURL: String?
    /// Names of the agent's environment variables commands also get, beyond `CommandEnvironment.allowed`.
    public var passEnvironment: [String]
    /// How long a run this agent holds (Pending/Running) but does not execute may stay unchanged before
    /// it is given back (Pending) or crashed (Running): what a lost reply leaves behind.
    public var reconcileAfter: Duration
    /// How long a command's supervisor waits without a liveness beat (the agent beats while its
    /// heartbeat to the database succeeds) before it kills the command's process group.
    public var fenceTimeout: Duration
    /// The scheduler reaper's heartbeat timeout (`pgflow-scheduler --heartbeat-timeout`, default 60 s):
    /// a run of an agent silent this long is handed to another agent. The fence must act well before.
    public var heartbeatTimeout: Duration
    /// Bytes of log lines kept in memory while the database cannot take them; more spill to a file.
    public var logMemoryBytes: Int
    /// Most bytes of log lines spilled to disk during an outage; beyond it lines are dropped (and counted).
    public var logSpillBytes: Int
    /// Whether the agent, when idle, offers its free capacity for runs pushed to it by `run_deployment`
    /// (started from a notification, with no claim: the shortest enqueue -> start). Off: claims only, so
    /// every run waits in its queue and queue priorities order all of them.
    public var takesPushes: Bool
    /// The key that opens secrets (`PGFLOW_SECRET_KEY` or `PGFLOW_SECRET_KEY_FILE`), for deployments with
    /// a secret environment (`env:` in pgflow.yaml). Without it such runs fail, saying so.
    public var secretKey: SecretKey?

    /// Creates a configuration.
    public init(
        queues: [String], name: String? = nil, limit: Int = 10, claimBatch: Int = 100,
        pollInterval: Duration = .seconds(1), heartbeatInterval: Duration = .seconds(5),
        killGracePeriod: Duration = .seconds(5), shutdownGracePeriod: Duration = .seconds(30),
        databaseURL: String = "", listenDatabaseURL: String? = nil, commandDatabaseURL: String? = nil, passEnvironment: [String] = [],
        reconcileAfter: Duration = .seconds(30), fenceTimeout: Duration = .seconds(20),
        heartbeatTimeout: Duration = .seconds(60), logMemoryBytes: Int = 64 << 20, logSpillBytes: Int = 1 << 30,
        secretKey: SecretKey? = nil, takesPushes: Bool = true
    ) {
        self.queues = queues
        self.name = name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        self.limit = limit
        self.claimBatch = claimBatch
        self.pollInterval = pollInterval
        self.heartbeatInterval = heartbeatInterval
        self.killGracePeriod = killGracePeriod
        self.shutdownGracePeriod = shutdownGracePeriod
        self.databaseURL = databaseURL
        self.listenDatabaseURL = listenDatabaseURL
        self.commandDatabaseURL = commandDatabaseURL
        self.passEnvironment = passEnvironment
        self.reconcileAfter = reconcileAfter
        self.fenceTimeout = fenceTimeout
        self.heartbeatTimeout = heartbeatTimeout
        self.logMemoryBytes = logMemoryBytes
        self.logSpillBytes = logSpillBytes
        self.secretKey = secretKey
        self.takesPushes = takesPushes
    }

    /// Slack in the fence relation: the liveness beat's period and lateness (2 s) plus clock skew and
    /// latency between the agent and the database (3 s).
    public static let fenceMargin: Duration = .seconds(5)

    /// The latest a fenced command's processes are all gone after the agent's last successful
    /// heartbeat: heartbeat interval + fence timeout + kill grace + margin. Must stay below the reaper's
    /// heartbeat timeout, so no retry starts while an attempt still runs.
    public var fenceDeadline: Duration { heartbeatInterval + fenceTimeout + killGracePeriod + Self.fenceMargin }

    /// Checks the values; the message says which one is wrong.
    public func validate() throws {
        if queues.isEmpty { throw AgentError.configuration("an agent needs at least one --queue") }
        if limit < 1 { throw AgentError.configuration("--limit must be at least 1, got \(limit)") }
        if claimBatch < 1 { throw AgentError.configuration("the claim batch must be at least 1, got \(claimBatch)") }
        if pollInterval <= .zero || heartbeatInterval <= .zero {
            throw AgentError.configuration("poll and heartbeat intervals must be positive")
        }
        if killGracePeriod < .zero || shutdownGracePeriod < .zero || reconcileAfter < .zero {
            throw AgentError.configuration("the kill grace, shutdown grace and reconcile delay must not be negative")
        }
        if fenceTimeout <= .zero || heartbeatTimeout <= .zero {
            throw AgentError.configuration("the fence timeout and the heartbeat timeout must be positive")
        }
        if logMemoryBytes < 1 || logSpillBytes < 0 {
            throw AgentError.configuration("the log buffer sizes must be positive")
        }
        if fenceDeadline >= heartbeatTimeout {
            throw AgentError.configuration("""
                --heartbeat (\(heartbeatInterval)) + --fence-timeout (\(fenceTimeout)) + --kill-grace (\(killGracePeriod)) + \
                \(Self.fenceMargin) margin must be below the reaper's --heartbeat-timeout (\(heartbeatTimeout)), \
                else a retry could start while the first attempt still runs
                """)
        }
    }
}

/// Errors an agent reports as one line.
public enum AgentError: Error, CustomStringConvertible, Sendable {
    /// A bad setting.
    case configuration(String)

    /// One line.
    public var description: String {
        switch self {
        case .configuration(let s): return s
        }
    }
}

/// Converts seconds from the database or a flag to a Duration without trapping: nil for NaN, infinity
/// and values ≤ 0 (no limit); values beyond `maximum` are clamped to it.
public func safeDuration(seconds: Double?, maximum: Duration = .seconds(100 * 365 * 86_400)) -> Duration? {
    guard let seconds, seconds.isFinite, seconds > 0 else { return nil }
    let maxSeconds = Double(maximum.components.seconds)
    if seconds >= maxSeconds { return maximum }
    return .nanoseconds(Int64((seconds * 1e9).rounded()))
}
