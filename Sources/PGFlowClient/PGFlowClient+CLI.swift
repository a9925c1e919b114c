// Typed calls the command line (and any client) uses beyond the engine's: schedules as stored, a run's
// states and log lines after an id (for followers), schedule pause/resume, changing some settings of
// a deployment, and enqueueing a run with a name, tags and an idempotency key.
import Foundation
import PGFlowPostgres

/// A schedule as `pgflow.schedule_list` shows it.
public struct StoredSchedule: Sendable, Equatable {
    /// Its id.
    public var id: UUID
    /// `cron`, `interval` or `rrule`.
    public var kind: String
    /// The cron expression or RRULE (intervals: `N seconds`).
    public var expression: String
    /// The interval in seconds (interval schedules).
    public var intervalSeconds: Double?
    /// The IANA time zone.
    public var timeZone: String
    /// Its parameters as PostgreSQL prints the JSON.
    public var parametersJSON: String
    /// Whether it creates runs.
    public var active: Bool
    /// The interval's anchor or the rule's DTSTART.
    public var anchorDate: Date?

    /// Creates a value (tests build them; the client reads them).
    public init(id: UUID, kind: String, expression: String, intervalSeconds: Double? = nil, timeZone: String = "UTC",
                parametersJSON: String = "{}", active: Bool = true, anchorDate: Date? = nil) {
        self.id = id
        self.kind = kind
        self.expression = expression
        self.intervalSeconds = intervalSeconds
        self.timeZone = timeZone
        self.parametersJSON = parametersJSON
        self.active = active
        self.anchorDate = anchorDate
    }
}

/// One entry of a flow run's state history.
public struct FlowRunStateEntry: Sendable, Equatable {
    /// Its id (increasing).
    public var id: Int64
    /// When the run entered it.
    public var timestamp: Date
    /// The state type (`COMPLETED`).
    public var type: String
    /// The state name (`Cached`).
    public var name: String
    /// The message, if any.
    public var message: String?

    /// True for COMPLETED, FAILED, CANCELLED and CRASHED.
    public var isTerminal: Bool { ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"].contains(type) }
}

/// One log line of a flow run.
public struct FlowRunLogLine: Sendable, Equatable {
    /// Its id (increasing).
    public var id: Int64
    /// When it was logged.
    public var timestamp: Date
    /// DEBUG, INFO, WARNING, ERROR or CRITICAL.
    public var level: String
    /// The logger's name.
    public var name: String
    /// The text.
    public var message: String
}

/// How to enqueue a run by hand (`pgflow.run_deployment`).
public struct RunRequest: Sendable, Equatable {
    /// Parameters as JSON object text, merged over the deployment's.
    public var parametersJSON = "{}"
    /// When it should start (nil: now).
    public var scheduledTime: Date?
    /// A key: asking again with it returns the first run instead of a new one.
    public var idempotencyKey: String?
    /// Tags added to the deployment's.
    public var tags: [String]?
    /// The run's name (nil: a random one).
    public var name: String?
    /// Another work queue than the deployment's.
    public var workQueue: String?

    /// Parameters `{}`, now, no key, no tags.
    public init() {}
}

extension PGFlowClient {
    /// The schedules of a deployment, oldest first.
    public static func storedSchedules(deployment: String, on c: PostgresConnection) throws -> [StoredSchedule] {
        try c.query("""
            SELECT id, kind, expression, interval_seconds, timezone, parameters::text AS parameters, active, anchor_date
              FROM pgflow.schedule_list WHERE deployment_id = pgflow._deployment_id($1) ORDER BY created_at, id
            """, [deployment]).rows.map { row in
            StoredSchedule(id: try row.decode(UUID.self, "id"), kind: try row.decode(String.self, "kind"),
                           expression: try row.decode(String.self, "expression"),
                           intervalSeconds: try row.decode(Double?.self, "interval_seconds"),
                           timeZone: try row.decode(String.self, "timezone"), parametersJSON: try row.decode(String.self, "parameters"),
                           active: try row.decode(Bool.self, "active"), anchorDate: try row.decode(Date?.self, "anchor_date"))
        }
    }

    /// JSON text as PostgreSQL's jsonb prints it (keys sorted its way), so two texts compare equal.
    public static func normalizedJSON(_ text: String, on c: PostgresConnection) throws -> String {
        try c.query("SELECT $1::jsonb::text", [PostgresRawJSON(text)]).scalar(String.self)
    }

    /// `pgflow.set_deployment_schedule_active`: pausing deletes the schedule's future Scheduled runs.
    public static func setDeploymentScheduleActive(_ id: UUID, active: Bool, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.set_deployment_schedule_active($1, $2)", [id, active])
    }

    /// `pgflow.update_deployment`: changes the settings named in `settingsJSON` (keys as in pgflow.yaml).
    @discardableResult
    public static func updateDeployment(_ name: String, settingsJSON: String, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.update_deployment($1, $2::jsonb)", [name, PostgresRawJSON(settingsJSON)]).scalar(UUID.self)
    }

    /// `pgflow.run_deployment` with every option; returns the run's id (the earlier run's for a used key).
    public static func runDeployment(_ name: String, _ r: RunRequest, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.run_deployment($1, $2::jsonb, $3, $4, $5, $6, $7)",
                    [name, PostgresRawJSON(r.parametersJSON), r.scheduledTime, r.idempotencyKey, r.tags, r.name, r.workQueue]
        ).scalar(UUID.self)
    }

    /// A flow run's states with ids above `after` (`pgflow.flow_run_states_after`; P0002 for an unknown run).
    public static func flowRunStates(_ id: UUID, after: Int64, on c: PostgresConnection) throws -> [FlowRunStateEntry] {
        try c.query("SELECT id, \"timestamp\", state_type, state_name, message FROM pgflow.flow_run_states_after($1, $2)", [id, Int(after)])
            .rows.map { row in
                FlowRunStateEntry(id: Int64(try row.decode(Int.self, "id")), timestamp: try row.decode(Date.self, "timestamp"),
                                  type: try row.decode(String.self, "state_type"), name: try row.decode(String.self, "state_name"),
                                  message: try row.decode(String?.self, "message"))
            }
    }

    /// A flow run's log lines with ids above `after` (`pgflow.flow_run_logs`; P0002 for an unknown run).
    public static func flowRunLogLines(_ id: UUID, after: Int64, minLevel: Int = 0, on c: PostgresConnection) throws -> [FlowRunLogLine] {
        try c.query("SELECT id, \"timestamp\", level, name, message FROM pgflow.flow_run_logs($1, $2, $3)", [id, Int(after), minLevel])
            .rows.map { row in
                FlowRunLogLine(id: Int64(try row.decode(Int.self, "id")), timestamp: try row.decode(Date.self, "timestamp"),
                        level: try row.decode(String.self, "level"), name: try row.decode(String.self, "name"),
                        message: try row.decode(String.self, "message"))
            }
    }
}
