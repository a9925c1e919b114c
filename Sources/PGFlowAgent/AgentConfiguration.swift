// PGFlowAgent: the process users run many of. It claims due flow runs from PostgreSQL
// (pgflow.claim_flow_runs), runs them as subprocesses or in-process Swift flows, writes their states
// and logs in batches, heartbeats, obeys cancellations, and shuts down without stranding a run.
import Foundation

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
    /// Time between SIGTERM and SIGKILL when a command run is cancelled or times out.
    public var killGracePeriod: Duration
    /// On shutdown, how long running work may take to finish before it is stopped.
    public var shutdownGracePeriod: Duration
    /// The database URL handed to command runs as `PGFLOW_DATABASE_URL`.
    public var databaseURL: String
    /// How long a run this agent holds (Pending/Running) but does not execute may stay unchanged before
    /// it is given back (Pending) or crashed (Running): what a lost reply leaves behind.
    public var reconcileAfter: Duration

    /// Creates a configuration.
    public init(
        queues: [String], name: String? = nil, limit: Int = 10, claimBatch: Int = 100,
        pollInterval: Duration = .seconds(1), heartbeatInterval: Duration = .seconds(5),
        killGracePeriod: Duration = .seconds(5), shutdownGracePeriod: Duration = .seconds(30),
        databaseURL: String = "", reconcileAfter: Duration = .seconds(30)
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
        self.reconcileAfter = reconcileAfter
    }

    /// Checks the values; the message says which one is wrong.
    public func validate() throws {
        if queues.isEmpty { throw AgentError.configuration("an agent needs at least one --queue") }
        if limit < 1 { throw AgentError.configuration("--limit must be at least 1, got \(limit)") }
        if claimBatch < 1 { throw AgentError.configuration("the claim batch must be at least 1, got \(claimBatch)") }
        if pollInterval <= .zero || heartbeatInterval <= .zero {
            throw AgentError.configuration("poll and heartbeat intervals must be positive")
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
