// Read-only listings for the CLI and scripts, from pgflow's views. Each returns rows of text for a
// table, or (json: true) one row holding a JSON array of objects with real JSON types.
import Foundation
import PGFlowPostgres

/// A listing the CLI prints.
public enum PGFlowListing {
    /// Runs `select` (a fixed query with bound parameters), as rows or as one JSON array.
    static func run(_ select: String, _ parameters: [(any PostgresEncodable)?], json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        json ? try c.query("SELECT coalesce(json_agg(t), '[]')::text AS json FROM (\(select)) t", parameters)
             : try c.query(select, parameters)
    }

    /// Deployments (`pgflow.deployment_list`), or one of them.
    public static func deployments(name: String? = nil, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT deployment, entrypoint, work_queue, paused, tags, concurrency_limit, retries, active_schedules
                   \(json ? ", parameters, collision_strategy, missed_run_policy, retry_backoff, retry_delays, version, description, id" : "")
              FROM pgflow.deployment_list
             WHERE $1::text IS NULL OR id = pgflow._deployment_id($1) ORDER BY deployment
            """, [name], json: json, on: c)
    }

    /// The schedules of a deployment.
    public static func schedules(deployment: String, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT s.id, s.kind, coalesce(s.cron, s."interval"::text, s.rrule) AS expression, s.timezone, s.active,
                   s.parameters, s.anchor_date
              FROM pgflow.deployment_schedules s WHERE s.deployment_id = pgflow._deployment_id($1) ORDER BY s.created_at, s.id
            """, [deployment], json: json, on: c)
    }

    /// Flow runs, newest first, filtered by state type or name and deployment.
    public static func flowRuns(state: String?, deployment: String?, limit: Int, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT h.id, h.name, coalesce(h.flow || '/' || h.deployment, h.flow) AS deployment, h.state_name AS state,
                   h.expected_start_time AS scheduled, h.start_time, h.end_time, h.run_count
                   \(json ? ", h.state::text AS state_type, h.parameters, h.tags, h.result, h.work_queue, h.state_message" : "")
              FROM pgflow.flow_run_history h
             WHERE ($1::text IS NULL OR h.state::text = upper($1) OR h.state_name = $1)
               AND ($2::text IS NULL OR h.deployment = $2 OR h.flow || '/' || h.deployment = $2)
             ORDER BY h.expected_start_time DESC, h.id LIMIT $3
            """, [state, deployment, limit], json: json, on: c)
    }

    /// One flow run, every column of `pgflow.flow_run_history`.
    public static func flowRun(_ id: UUID, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT * FROM pgflow.flow_run_history WHERE id = $1", [id], json: json, on: c)
    }

    /// A flow run's state history.
    public static func flowRunStates(_ id: UUID, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT "timestamp", state_type::text AS type, state_name AS state, message FROM pgflow.flow_run_states
             WHERE flow_run_id = $1 ORDER BY id
            """, [id], json: json, on: c)
    }

    /// A flow run's log lines after log id `after`, oldest first.
    public static func logs(flowRun id: UUID, after: Int64, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT l.id, l."timestamp", l.level, l.name, l.message FROM pgflow.logs l
             WHERE l.flow_run_id = $1 AND l.id > $2 ORDER BY l.id
            """, [id, Int(after)], json: json, on: c)
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

    /// The next runs waiting in a queue, in claim order.
    public static func queuePreview(_ name: String, limit: Int, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT r.id, r.name, coalesce(f.name || '/' || d.name, f.name) AS deployment, r.state_name AS state, rq.scheduled_at
              FROM pgflow.run_queue rq JOIN pgflow.work_queues q ON q.id = rq.work_queue_id
              JOIN pgflow.flow_runs r ON r.id = rq.flow_run_id JOIN pgflow.flows f ON f.id = r.flow_id
              LEFT JOIN pgflow.deployments d ON d.id = r.deployment_id
             WHERE q.name = $1 ORDER BY rq.scheduled_at, r.id LIMIT $2
            """, [name, limit], json: json, on: c)
    }

    /// Concurrency limits with their slots in use (`pgflow.concurrency_status`), or one of them.
    public static func concurrencyLimits(name: String? = nil, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT * FROM pgflow.concurrency_status WHERE $1::text IS NULL OR name = $1 ORDER BY name", [name], json: json, on: c)
    }

    /// True when a work queue of that name exists.
    public static func workQueueExists(_ name: String, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT EXISTS (SELECT 1 FROM pgflow.work_queues WHERE name = $1)", [name]).scalar(Bool.self)
    }

    /// A flow run's state type, state name and newest log id, or nil when it does not exist.
    public static func flowRunProgress(_ id: UUID, on c: PostgresConnection) throws -> (type: String, name: String)? {
        guard let row = try c.query("SELECT state_type::text, state_name FROM pgflow.flow_runs WHERE id = $1", [id]).first else { return nil }
        return (try row.decode(String.self, at: 0), try row.decode(String.self, at: 1))
    }
}
