// Reads for the HTTP API, answered by PostgreSQL as JSON text (the API passes it through): each calls
// one listing function or view of sql/migrations/0005_api.sql (or an earlier view) with bound
// parameters, so psql users read the same rows.
import Foundation
import PGFlowPostgres

/// A page of a keyset-paginated listing.
public struct JSONPage: Sendable {
    /// A JSON array of objects.
    public let items: String
    /// Pass this as `cursor` for the next page; nil on the last page.
    public let nextCursor: String?
}

/// Filters of `pgflow.flow_run_page` (nil: no filter).
public struct FlowRunFilter: Sendable {
    /// State type (`FAILED`) and state name (`Late`).
    public var stateType: String?, stateName: String?
    /// Flow name, deployment (`flow/deployment`), tag, work queue.
    public var flow: String?, deployment: String?, tag: String?, workQueue: String?
    /// Created at or after `since`, before `until`.
    public var since: Date?, until: Date?
    /// Page size (1 to 1000) and the cursor of the previous page.
    public var limit = 50, cursor: String?

    /// No filter, 50 runs.
    public init() {}
}

/// JSON reads for the API.
public enum PGFlowJSON {
    /// Every row of `select` as one JSON array.
    static func array(_ select: String, _ parameters: [(any PostgresEncodable)?], on c: PostgresConnection) throws -> String {
        try c.query("SELECT coalesce(json_agg(t), '[]')::text FROM (\(select)) t", parameters).scalar(String.self)
    }

    /// The one row of `select` as a JSON object, or nil when there is none.
    static func object(_ select: String, _ parameters: [(any PostgresEncodable)?], on c: PostgresConnection) throws -> String? {
        try c.query("SELECT row_to_json(t)::text FROM (\(select)) t LIMIT 1", parameters).first?.decode(String.self, at: 0)
    }

    /// A page of `select` (rows carrying a `cursor` column, in page order), the cursor left out of the items.
    static func page(_ select: String, _ parameters: [(any PostgresEncodable)?], limit: Int, on c: PostgresConnection) throws -> JSONPage {
        let row = try c.query("""
            SELECT coalesce(json_agg(to_jsonb(t) - 'cursor' - 'n' ORDER BY t.n), '[]')::text, count(*), (array_agg(t.cursor ORDER BY t.n DESC))[1]
              FROM (SELECT s.*, row_number() OVER () AS n FROM (\(select)) s) t
            """, parameters).first
        let count = try row?.decode(Int.self, at: 1) ?? 0
        return JSONPage(items: try row?.decode(String.self, at: 0) ?? "[]", nextCursor: count == limit ? try row?.decode(String?.self, at: 2) : nil)
    }

    /// `pgflow.flow_run_page`.
    public static func flowRuns(_ f: FlowRunFilter, on c: PostgresConnection) throws -> JSONPage {
        try page("SELECT * FROM pgflow.flow_run_page($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                 [f.stateType, f.stateName, f.flow, f.deployment, f.tag, f.workQueue, f.since, f.until, f.limit, f.cursor],
                 limit: f.limit, on: c)
    }

    /// `pgflow.get_flow_run` (SQLSTATE P0002 for an unknown id).
    public static func flowRun(_ id: UUID, on c: PostgresConnection) throws -> String {
        try object("SELECT * FROM pgflow.get_flow_run($1)", [id], on: c) ?? "{}"
    }

    /// `pgflow.flow_run_state_history`.
    public static func flowRunStates(_ id: UUID, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.flow_run_state_history($1)", [id], on: c)
    }

    /// `pgflow.flow_run_log_page`: lines after log id `after`.
    public static func flowRunLogs(_ id: UUID, after: Int64, limit: Int, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.flow_run_log_page($1, $2, $3)", [id, after, limit], on: c)
    }

    /// `pgflow.list_task_runs`.
    public static func taskRuns(flowRun: UUID?, stateType: String?, limit: Int, cursor: String?, on c: PostgresConnection) throws -> JSONPage {
        try page("SELECT * FROM pgflow.list_task_runs($1, $2, $3, $4)", [flowRun, stateType, limit, cursor], limit: limit, on: c)
    }

    /// One task run of `pgflow.task_run_history`, or nil.
    public static func taskRun(_ id: UUID, on c: PostgresConnection) throws -> String? {
        try object("SELECT t.*, t.state::text AS state_type, extract(epoch FROM t.total_run_time)::float8 AS total_run_seconds FROM pgflow.task_run_history t WHERE t.id = $1", [id], on: c)
    }

    private static let deploymentColumns = """
        SELECT l.deployment AS name, split_part(l.deployment, '/', 1) AS flow, d.name AS deployment_name, l.entrypoint,
               l.work_queue, l.paused, l.tags, l.parameters, l.concurrency_limit, l.collision_strategy, l.missed_run_policy,
               l.retries, l.retry_backoff, l.retry_delays, d.retry_jitter, d.timeout_seconds, l.version, l.description,
               l.active_schedules, l.id, d.created_at, d.updated_at
          FROM pgflow.deployment_list l JOIN pgflow.deployments d ON d.id = l.id
        """

    /// Deployments (`pgflow.deployment_list`), filtered by flow, work queue, tag and paused.
    public static func deployments(flow: String?, workQueue: String?, tag: String?, paused: Bool?, on c: PostgresConnection) throws -> String {
        try array(deploymentColumns + """
             WHERE ($1::text IS NULL OR split_part(l.deployment, '/', 1) = $1) AND ($2::text IS NULL OR l.work_queue = $2)
               AND ($3::text IS NULL OR l.tags @> ARRAY[$3::text]) AND ($4::boolean IS NULL OR l.paused = $4)
             ORDER BY l.deployment
            """, [flow, workQueue, tag, paused], on: c)
    }

    /// One deployment (`flow/deployment`; SQLSTATE P0002 when unknown).
    public static func deployment(_ name: String, on c: PostgresConnection) throws -> String {
        try object(deploymentColumns + " WHERE l.id = pgflow._deployment_id($1)", [name], on: c) ?? "{}"
    }

    /// A deployment's schedules.
    public static func schedules(deployment: String, on c: PostgresConnection) throws -> String {
        try array("""
            SELECT s.id, s.kind, coalesce(s.cron, s."interval"::text, s.rrule) AS expression, s.timezone, s.active,
                   s.parameters, s.anchor_date, s.created_at
              FROM pgflow.deployment_schedules s WHERE s.deployment_id = pgflow._deployment_id($1) ORDER BY s.created_at, s.id
            """, [deployment], on: c)
    }

    /// Work queues (`pgflow.queue_status`), or one (nil when unknown).
    public static func workQueues(on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.queue_status ORDER BY priority, name", [], on: c)
    }

    /// One work queue's status, or nil.
    public static func workQueue(_ name: String, on c: PostgresConnection) throws -> String? {
        try object("SELECT * FROM pgflow.queue_status WHERE name = $1", [name], on: c)
    }

    /// The next runs waiting in a queue, in claim order (SQLSTATE P0002 for an unknown queue).
    public static func workQueuePreview(_ name: String, limit: Int, on c: PostgresConnection) throws -> String {
        try array("""
            SELECT r.id, r.name, coalesce(f.name || '/' || d.name, f.name) AS deployment, r.state_name, rq.scheduled_at
              FROM pgflow.run_queue rq JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id JOIN pgflow.flows f ON f.id = r.flow_id
              LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
             WHERE rq.work_queue_id = pgflow._work_queue_id($1) ORDER BY rq.scheduled_at, r.id LIMIT $2
            """, [name, limit], on: c)
    }

    /// Concurrency limits with their slots in use (`pgflow.concurrency_status`).
    public static func concurrencyLimits(on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.concurrency_status ORDER BY name", [], on: c)
    }

    /// One concurrency limit, or nil.
    public static func concurrencyLimit(_ name: String, on c: PostgresConnection) throws -> String? {
        try object("SELECT * FROM pgflow.concurrency_status WHERE name = $1", [name], on: c)
    }

    /// Agents (`pgflow.agent_status`), newest heartbeat first.
    public static func agents(on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.agent_status ORDER BY last_heartbeat_at DESC, id", [], on: c)
    }

    /// Flows (`pgflow.flow_list`).
    public static func flows(on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.flow_list ORDER BY name", [], on: c)
    }

    /// Variables (`pgflow.variable_list`).
    public static func variables(on c: PostgresConnection) throws -> String {
        try array("SELECT key, value, updated_at FROM pgflow.variable_list ORDER BY key", [], on: c)
    }

    /// One variable, or nil.
    public static func variable(_ key: String, on c: PostgresConnection) throws -> String? {
        try object("SELECT key, value, updated_at FROM pgflow.variable_list WHERE key = $1", [key], on: c)
    }
}
