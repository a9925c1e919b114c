// Typed calls for deployments and their schedules: create (deploy), pause, run, and schedule sync.
import Foundation
import PGFlowPostgres

/// A deployment as `pgflow.yaml` describes it (the arguments of `pgflow.create_deployment`).
public struct DeploymentSpec: Sendable, Equatable {
    /// The flow's name.
    public var flow: String
    /// The deployment's name within the flow.
    public var name: String
    /// A command line, or `swift:NAME` for a flow registered in an agent.
    public var entrypoint: String
    /// Default parameters, as JSON object text.
    public var parametersJSON = "{}"
    /// The work queue.
    public var workQueue = "default"
    /// Tags every run gets.
    public var tags: [String] = []
    /// A description.
    public var description: String?
    /// A version label.
    public var version: String?
    /// Most runs of this deployment running at once (nil: no limit).
    public var concurrencyLimit: Int?
    /// `ENQUEUE` or `CANCEL_NEW` when the limit is full.
    public var collisionStrategy = "ENQUEUE"
    /// How many times a failed run runs again.
    public var retries = 0
    /// Retry delays in seconds (one for fixed/exponential, one or more for list).
    public var retryDelays: [Double] = [0]
    /// `fixed`, `list` or `exponential`.
    public var retryBackoff = "fixed"
    /// Up to this fraction added to each delay at random.
    public var retryJitter: Double = 0
    /// Whether its schedules are paused.
    public var paused = false
    /// What the scheduler does with its missed scheduled runs (nil: the scheduler's default).
    public var missedRunPolicy: MissedRunPolicy?
    /// Seconds after which the agent stops a run (TimedOut); nil: no timeout.
    public var timeoutSeconds: Double?

    /// Creates a spec with the defaults of `pgflow.create_deployment`.
    public init(flow: String, name: String, entrypoint: String) {
        self.flow = flow
        self.name = name
        self.entrypoint = entrypoint
    }
}

/// A schedule as `pgflow.yaml` describes it (the arguments of `pgflow.create_deployment_schedule`).
public struct ScheduleSpec: Sendable, Equatable {
    /// `cron`, `interval` or `rrule`.
    public var kind: String
    /// The cron expression, the interval as PostgreSQL interval text (`3600 seconds`), or the RRULE.
    public var expression: String
    /// The IANA time zone.
    public var timeZone = "UTC"
    /// Parameters merged over the deployment's, as JSON object text.
    public var parametersJSON = "{}"
    /// Whether it creates runs.
    public var active = true
    /// The interval's anchor or the rule's DTSTART.
    public var anchorDate: Date?

    /// Creates a spec.
    public init(kind: String, expression: String) {
        self.kind = kind
        self.expression = expression
    }
}

extension PGFlowClient {
    /// `pgflow.create_deployment`: creates or updates a deployment; returns its id.
    @discardableResult
    public static func createDeployment(_ d: DeploymentSpec, on c: PostgresConnection) throws -> UUID {
        try c.query(
            """
            SELECT pgflow.create_deployment($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12::float8[], $13, $14, $15,
                                            p_missed_run_policy => $16, p_timeout_seconds => $17)
            """,
            [d.flow, d.name, d.entrypoint, PostgresRawJSON(d.parametersJSON), d.workQueue, d.tags, d.description, d.version,
             d.concurrencyLimit, d.collisionStrategy, d.retries, PostgresTextArray(d.retryDelays.map { "\($0)" }),
             d.retryBackoff, d.retryJitter, d.paused, d.missedRunPolicy?.rawValue, d.timeoutSeconds]
        ).scalar(UUID.self)
    }

    /// `pgflow.create_deployment_schedule`: adds a schedule to a deployment; returns its id.
    @discardableResult
    public static func createDeploymentSchedule(deployment: String, _ s: ScheduleSpec, on c: PostgresConnection) throws -> UUID {
        try c.query(
            "SELECT pgflow.create_deployment_schedule($1, $2, $3, $4, $5::jsonb, $6, $7)",
            [deployment, s.kind, s.expression, s.timeZone, PostgresRawJSON(s.parametersJSON), s.active, s.anchorDate]
        ).scalar(UUID.self)
    }

    /// `pgflow.delete_deployment_schedule`: deletes a schedule and its future Scheduled runs.
    public static func deleteDeploymentSchedule(_ id: UUID, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.delete_deployment_schedule($1)", [id])
    }

    /// `pgflow.set_deployment_paused`.
    public static func setDeploymentPaused(_ name: String, paused: Bool, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.set_deployment_paused($1, $2)", [name, paused])
    }

    /// `pgflow.set_deployment_missed_run_policy`; nil: the scheduler's default.
    public static func setDeploymentMissedRunPolicy(_ name: String, policy: MissedRunPolicy?, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.set_deployment_missed_run_policy($1, $2)", [name, policy?.rawValue])
    }

    /// `pgflow.delete_deployment`: deletes a deployment with its schedules, its limit and its runs that
    /// never started (runs awaiting a retry end Cancelled; finished runs stay as history). Refused
    /// (SQLSTATE 55000) while one of its runs is in progress. Returns how many runs it deleted.
    @discardableResult
    public static func deleteDeployment(_ name: String, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.delete_deployment($1)", [name]).scalar(Int.self)
    }

    /// `pgflow.run_deployment`: enqueues a run; returns its id.
    public static func runDeployment(_ name: String, parametersJSON: String, scheduledTime: Date?, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.run_deployment($1, $2::jsonb, $3)", [name, PostgresRawJSON(parametersJSON), scheduledTime]).scalar(UUID.self)
    }
}
