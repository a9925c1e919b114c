// Typed calls the scheduler uses: reading schedules and the runs they made, materialising runs
// (pgflow.schedule_flow_runs), and waking agents when scheduled runs fall due.
import Foundation
import PGFlowPostgres

/// A deployment schedule as stored in `pgflow.deployment_schedules`.
public struct DeploymentScheduleRecord: Sendable, Equatable {
    /// The schedule's id.
    public let id: UUID
    /// The deployment it belongs to.
    public let deploymentID: UUID
    /// `cron`, `interval` or `rrule`.
    public let kind: String
    /// The cron expression or the RRULE text (nil for intervals).
    public let expression: String?
    /// The interval in seconds (interval schedules only).
    public let intervalSeconds: Double?
    /// The interval's anchor, or the rule's DTSTART when its text has none.
    public let anchorDate: Date?
    /// The IANA time zone the schedule is evaluated in.
    public let timeZone: String
    /// False when the schedule is inactive or its deployment paused: it wants no future runs.
    public let wantsRuns: Bool
    /// The latest start of any run this schedule created (past or future), or nil when it has none.
    public let lastRunTime: Date?
    /// When the schedule or its deployment last changed (a pause or resume among them).
    public let changedAt: Date?
    /// The deployment's missed-run policy (nil: the scheduler's default).
    public let missedRunPolicy: MissedRunPolicy?

    /// Creates a record (the scheduler reads them from the database; tests build them).
    public init(id: UUID, deploymentID: UUID, kind: String, expression: String?, intervalSeconds: Double?,
                anchorDate: Date?, timeZone: String, wantsRuns: Bool, lastRunTime: Date? = nil, changedAt: Date? = nil,
                missedRunPolicy: MissedRunPolicy? = nil) {
        self.lastRunTime = lastRunTime
        self.changedAt = changedAt
        self.missedRunPolicy = missedRunPolicy
        self.id = id
        self.deploymentID = deploymentID
        self.kind = kind
        self.expression = expression
        self.intervalSeconds = intervalSeconds
        self.anchorDate = anchorDate
        self.timeZone = timeZone
        self.wantsRuns = wantsRuns
    }

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, "id")
        deploymentID = try row.decode(UUID.self, "deployment_id")
        kind = try row.decode(String.self, "kind")
        expression = try row.decode(String?.self, "expression")
        intervalSeconds = try row.decode(Double?.self, "interval_seconds")
        anchorDate = try row.decode(Date?.self, "anchor_date")
        timeZone = try row.decode(String.self, "timezone")
        wantsRuns = try row.decode(Bool.self, "wants_runs")
        lastRunTime = try row.decode(Date?.self, "last_run_time")
        changedAt = try row.decode(Date?.self, "changed_at")
        missedRunPolicy = try row.decode(String?.self, "missed_run_policy").flatMap(MissedRunPolicy.init(rawValue:))
    }
}

/// A future run that a schedule created.
public struct ScheduledRunTime: Sendable, Equatable {
    /// The schedule that created it.
    public let scheduleID: UUID
    /// Its scheduled start.
    public let time: Date
    /// True while it is still plainly `Scheduled` (so `schedule_flow_runs` may delete it).
    public let replaceable: Bool

    /// Creates a value.
    public init(scheduleID: UUID, time: Date, replaceable: Bool) {
        self.scheduleID = scheduleID
        self.time = time
        self.replaceable = replaceable
    }
}

extension PGFlowClient {
    /// Up to `limit` schedules with ids above `after`, in id order (keyset pagination). With `lock`,
    /// the schedule rows are locked for the caller's transaction and rows another transaction holds
    /// are skipped (two schedulers split the schedules between them instead of racing on one).
    public static func deploymentSchedules(after: UUID?, limit: Int, lock: Bool = false, on c: PostgresConnection) throws -> [DeploymentScheduleRecord] {
        try c.query("SELECT * FROM pgflow.deployment_schedule_batch($1, $2, $3)", [after, limit, lock])
            .rows.map(DeploymentScheduleRecord.init(row:))
    }

    /// The schedule-created runs of these deployments starting after `now`, by deployment.
    public static func scheduledRunTimes(deploymentIDs: [UUID], after now: Date, on c: PostgresConnection) throws -> [UUID: [ScheduledRunTime]] {
        if deploymentIDs.isEmpty { return [:] }
        var byDeployment: [UUID: [ScheduledRunTime]] = [:]
        let rows = try c.query(
            "SELECT * FROM pgflow.scheduled_run_times($1::uuid[], $2)",
            [PostgresTextArray(deploymentIDs.map { $0.uuidString }), now]
        ).rows
        for row in rows {
            let run = ScheduledRunTime(
                scheduleID: try row.decode(UUID.self, "deployment_schedule_id"),
                time: try row.decode(Date.self, "expected_start_time"),
                replaceable: try row.decode(Bool.self, "replaceable"))
            byDeployment[try row.decode(UUID.self, "deployment_id"), default: []].append(run)
        }
        return byDeployment
    }

    /// `pgflow.schedule_flow_runs` for many schedules in one statement: each schedule's future
    /// Scheduled runs become exactly its list of times. Returns the runs inserted and deleted.
    public static func scheduleFlowRuns(_ batch: [(scheduleID: UUID, times: [Date])], now: Date, on c: PostgresConnection) throws -> (inserted: Int, deleted: Int) {
        if batch.isEmpty { return (0, 0) }
        let row = try c.query(
            """
            SELECT coalesce(sum(f.inserted), 0)::int AS inserted, coalesce(sum(f.deleted), 0)::int AS deleted
              FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS x(id, times, ord)
             CROSS JOIN LATERAL pgflow.schedule_flow_runs(x.id, x.times::timestamptz[], $3) f
            """,
            [
                PostgresTextArray(batch.map { $0.scheduleID.uuidString }),
                PostgresTextArray(batch.map { PostgresTextArray($0.times.map { $0.postgresText }).postgresText }),
                now,
            ]
        ).first
        return (try row?.decode(Int.self, "inserted") ?? 0, try row?.decode(Int.self, "deleted") ?? 0)
    }

    /// For each work queue with waiting runs due after `now`: the earliest such time.
    public static func nextDueTimes(after now: Date, on c: PostgresConnection) throws -> [(queue: String, due: Date)] {
        try c.query("SELECT * FROM pgflow.next_due_times($1)", [now]).rows.map { (try $0.decode(String.self, "queue"), try $0.decode(Date.self, "due")) }
    }

    /// `pgflow.notify` on channel `pgflow_runs` for each queue: agents serving it claim at once.
    public static func notifyRunsDue(queues: [String], on c: PostgresConnection) throws {
        if queues.isEmpty { return }
        try c.query("SELECT pgflow.notify('pgflow_runs', q) FROM unnest($1::text[]) q", [queues])
    }
}
