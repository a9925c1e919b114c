// Reads for the web dashboard (pgflow-api at /), answered as JSON text like the API's: each calls one
// read-only function of sql/migrations/0009_dashboard.sql (or an earlier view) with bound parameters,
// so the SQL a page shows under "SQL" returns the same rows in psql.
import Foundation
import PGFlowPostgres

extension PGFlowJSON {
    /// `pgflow.run_activity`: runs per bucket and state in [since, until).
    public static func runActivity(since: Date, until: Date, bucketSeconds: Int, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.run_activity($1, $2, make_interval(secs => $3))", [since, until, Double(bucketSeconds)], on: c)
    }

    /// `pgflow.run_state_counts`: runs by state for a window starting at `since`.
    public static func runStateCounts(since: Date, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.run_state_counts($1)", [since], on: c)
    }

    /// `pgflow.failing_deployments`.
    public static func failingDeployments(since: Date, limit: Int, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.failing_deployments($1, $2)", [since, limit], on: c)
    }

    /// `pgflow.late_flow_runs`.
    public static func lateFlowRuns(limit: Int, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.late_flow_runs($1)", [limit], on: c)
    }

    /// `pgflow.deployment_upcoming_runs` (SQLSTATE P0002 for an unknown deployment).
    public static func deploymentUpcomingRuns(_ deployment: String, limit: Int, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.deployment_upcoming_runs($1, $2)", [deployment, limit], on: c)
    }

    /// A deployment's schedules with their next run (`pgflow.schedule_list`).
    public static func scheduleList(deployment: String, on c: PostgresConnection) throws -> String {
        try array("SELECT id, kind, expression, timezone, active, next_run FROM pgflow.schedule_list WHERE deployment = $1 ORDER BY created_at, id",
                  [deployment], on: c)
    }

    /// `pgflow.flow_run_task_timeline` (SQLSTATE P0002 for an unknown run).
    public static func taskTimeline(_ flowRun: UUID, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.flow_run_task_timeline($1)", [flowRun], on: c)
    }

    /// `pgflow.concurrency_limit_holders` (SQLSTATE P0002 for an unknown limit).
    public static func concurrencyLimitHolders(_ name: String, on c: PostgresConnection) throws -> String {
        try array("SELECT * FROM pgflow.concurrency_limit_holders($1)", [name], on: c)
    }

    /// A flow run's artifacts, newest first (`pgflow.artifact_list`).
    public static func artifacts(flowRun: UUID, limit: Int, on c: PostgresConnection) throws -> String {
        try array("""
            SELECT id, key, version, type, description, data, created_at FROM pgflow.artifact_list
             WHERE flow_run_id = $1 ORDER BY created_at DESC, id LIMIT $2
            """, [flowRun, limit], on: c)
    }

    /// The flow runs that `filter` selects, following pages up to `cap` runs (for batch actions on
    /// everything matching a filter): their ids, and whether more match past the cap.
    public static func flowRunIDs(_ filter: FlowRunFilter, cap: Int, on c: PostgresConnection) throws -> (ids: [UUID], more: Bool) {
        var f = filter
        f.cursor = nil
        var ids: [UUID] = []
        while ids.count < cap {
            f.limit = min(1000, cap - ids.count + 1)
            let rows = try c.query("""
                SELECT id, cursor FROM pgflow.flow_run_page($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                """, [f.stateType, f.stateName, f.flow, f.deployment, f.tag, f.workQueue, f.since, f.until, f.limit, f.cursor]).rows
            for row in rows { ids.append(try row.decode(UUID.self, at: 0)) }
            guard rows.count == f.limit, let last = rows.last else { break }
            f.cursor = try last.decode(String.self, at: 1)
        }
        return (Array(ids.prefix(cap)), ids.count > cap)
    }
}
