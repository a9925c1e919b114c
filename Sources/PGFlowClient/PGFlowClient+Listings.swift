// Read-only listings for the CLI and scripts, from pgflow's views and listing functions (never its
// tables). Each returns rows of text for a table, or (json: true) one row holding a JSON array of
// objects with real JSON types (timestamps in ISO 8601).
import Foundation
import PGFlowPostgres

/// A listing the CLI prints.
public enum PGFlowListing {
    /// Runs `select` (a fixed query with bound parameters), as rows or as one JSON array.
    static func run(_ select: String, _ parameters: [(any PostgresEncodable)?], json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        json ? try c.query("SELECT coalesce(json_agg(t), '[]')::text AS json FROM (\(select)) t", parameters)
             : try c.query(select, parameters)
    }

    /// Deployments (`pgflow.deployment_list`), or one of them; `detail` adds every setting.
    public static func deployments(name: String? = nil, detail: Bool = false, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT deployment, entrypoint, work_queue, paused, tags, concurrency_limit, retries, active_schedules
                   \(json || detail ? """
                   , parameters, collision_strategy, missed_run_policy, retry_backoff, retry_delays, retry_jitter,
                   timeout_seconds, version, description, updated_at, id
                   """ : "")
              FROM pgflow.deployment_list
             WHERE $1::text IS NULL OR id = pgflow._deployment_id($1) ORDER BY deployment
            """, [name], json: json, on: c)
    }

    /// Schedules (`pgflow.schedule_list`), of one deployment or all.
    public static func schedules(deployment: String?, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT id, deployment, kind, expression, timezone, active, deployment_paused, next_run, anchor_date, parameters
              FROM pgflow.schedule_list
             WHERE $1::text IS NULL OR deployment_id = pgflow._deployment_id($1) ORDER BY deployment, created_at, id
            """, [deployment], json: json, on: c)
    }

    /// A flow run listing's filters (`pgflow.list_flow_runs`).
    public struct FlowRunFilter: Sendable {
        /// A state type or name, any case.
        public var state: String?
        /// A flow name.
        public var flow: String?
        /// `flow/deployment`.
        public var deployment: String?
        /// A tag.
        public var tag: String?
        /// Created (or, upcoming, due) since.
        public var since: Date?
        /// The Scheduled runs still ahead instead of recent activity.
        public var upcoming = false
        /// created (nil: newest created first), or with `upcoming` scheduled (nil: soonest first).
        public var sort: String?
        /// Most runs.
        public var limit = 20

        /// No filter: the 20 newest runs (started, or due).
        public init() {}
    }

    /// Flow runs by `pgflow.list_flow_runs`.
    public static func flowRuns(_ f: FlowRunFilter, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT h.id, h.name, coalesce(h.flow || '/' || h.deployment, h.flow) AS deployment, h.state_name AS state,
                   h.expected_start_time AS scheduled, h.start_time, h.end_time, h.run_count
                   \(json ? ", h.state::text AS state_type, h.parameters, h.tags, h.result, h.work_queue, h.state_message, h.agent" : "")
              FROM pgflow.list_flow_runs($1, $2, $3, $4, $5, $6, $7, $8) h
            """, [f.state, f.flow, f.deployment, f.tag, f.since, f.upcoming, f.sort, f.limit], json: json, on: c)
    }

    /// One flow run, every column of `pgflow.flow_run_history`.
    public static func flowRun(_ id: UUID, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT id, name, flow, deployment, work_queue, state::text AS state_type, state_name AS state, state_message,
                   run_count, expected_start_time, start_time, end_time, total_run_time, parameters, tags, result,
                   agent, agent_id, process_id, idempotency_key, parent_task_run_id, created_at
              FROM pgflow.flow_run_history WHERE id = $1
            """, [id], json: json, on: c)
    }

    /// A flow run's states with ids above `after`, oldest first (`pgflow.flow_run_states_after`).
    public static func flowRunStates(_ id: UUID, after: Int64 = 0, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT id, "timestamp", state_type AS type, state_name AS state, message FROM pgflow.flow_run_states_after($1, $2)
            """, [id, Int(after)], json: json, on: c)
    }

    /// A flow run's log lines after log id `after`, oldest first (`pgflow.flow_run_logs`).
    public static func logs(flowRun id: UUID, after: Int64, minLevel: Int = 0, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT id, "timestamp", level, name, message, task_run_id FROM pgflow.flow_run_logs($1, $2, $3)
            """, [id, Int(after), minLevel], json: json, on: c)
    }

    /// Task runs of a flow run (or the latest of all).
    public static func taskRuns(flowRun: UUID?, limit: Int, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT t.id, t.flow_run, t.task_key, t.name, t.state_name AS state, t.start_time, t.end_time, t.run_count
                   \(json ? ", t.flow_run_id, t.state::text AS state_type, t.inputs, t.tags, t.cache_key, t.result" : "")
              FROM pgflow.task_run_history t WHERE $1::uuid IS NULL OR t.flow_run_id = $1
             ORDER BY t.created_at DESC, t.id LIMIT $2
            """, [flowRun, limit], json: json, on: c)
    }

    /// One task run.
    public static func taskRun(_ id: UUID, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT * FROM pgflow.task_run_history WHERE id = $1", [id], json: json, on: c)
    }

    /// Work queues with their status (`pgflow.queue_status`), or one of them.
    public static func workQueues(name: String? = nil, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT * FROM pgflow.queue_status WHERE $1::text IS NULL OR name = $1 ORDER BY priority, name", [name], json: json, on: c)
    }

    /// The next runs waiting in a queue, in claim order (`pgflow.queue_preview`).
    public static func queuePreview(_ name: String, limit: Int, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT id, name, deployment, state, scheduled_at FROM pgflow.queue_preview
             WHERE work_queue = $1 ORDER BY scheduled_at, id LIMIT $2
            """, [name, limit], json: json, on: c)
    }

    /// Concurrency limits with their slots in use (`pgflow.concurrency_status`), or one of them.
    public static func concurrencyLimits(name: String? = nil, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT * FROM pgflow.concurrency_status WHERE $1::text IS NULL OR name = $1 ORDER BY name", [name], json: json, on: c)
    }

    /// Agents (`pgflow.agent_list`): online first, then by name.
    public static func agents(all: Bool, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT name, work_queues, status, last_heartbeat_at AS last_heartbeat, runs_held, registered_at
                   \(json ? ", id" : "")
              FROM pgflow.agent_list WHERE $1 OR status = 'ONLINE' ORDER BY status DESC, name, registered_at
            """, [all], json: json, on: c)
    }

    /// Flows (`pgflow.flow_list`).
    public static func flows(json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT name, deployments, deployment_names, created_at FROM pgflow.flow_list ORDER BY name", [], json: json, on: c)
    }

    /// True when a work queue of that name exists.
    public static func workQueueExists(_ name: String, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT EXISTS (SELECT 1 FROM pgflow.queue_status WHERE name = $1)", [name]).scalar(Bool.self)
    }
}
