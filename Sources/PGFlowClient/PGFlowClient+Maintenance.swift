// Typed calls of the maintenance functions the scheduler runs: late runs, the missed-run policy,
// the reaper, pause expiry, expired slot leases and retention. All take `now` so tests control time.
import Foundation
import PGFlowPostgres

/// What to do with scheduled runs that were missed (still waiting well past their start, typically
/// because everything was down): stored per deployment in `pgflow.deployments.missed_run_policy`.
public enum MissedRunPolicy: String, Sendable, CaseIterable, Codable {
    /// Run every missed run (nothing is cancelled).
    case runAll = "run_all"
    /// Run only the latest due run of each deployment; cancel the older missed ones.
    case latest
    /// Cancel every missed run.
    case skip

    /// Parses `run_all`/`run-all`/`all`, `latest` or `skip`.
    public init?(text: String) {
        switch text.lowercased().replacingOccurrences(of: "-", with: "_") {
        case "run_all", "all": self = .runAll
        case "latest", "run_latest": self = .latest
        case "skip": self = .skip
        default: return nil
        }
    }
}

extension PGFlowClient {
    /// `pgflow.mark_late_runs`: Scheduled runs more than `threshold` seconds past their start become Late.
    public static func markLateRuns(threshold: Double, now: Date, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.mark_late_runs(make_interval(secs => $1), $2)", [threshold, now]).scalar(Int.self)
    }

    /// `pgflow.reap_crashed_runs` at a given time: agents silent for longer than `timeout` seconds go
    /// offline, their runs crash (and are retried per policy), their slots are released.
    public static func reapCrashedRuns(heartbeatTimeout seconds: Double, now: Date, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.reap_crashed_runs(make_interval(secs => $1), $2)", [seconds, now]).scalar(Int.self)
    }

    /// `pgflow.release_expired_slots`: deletes expired slot leases; returns how many rows.
    public static func releaseExpiredSlots(now: Date, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.release_expired_slots($1)", [now]).scalar(Int.self)
    }

    /// `pgflow.expire_paused_runs`: paused runs past their timeout fail as TimedOut; returns how many.
    public static func expirePausedRuns(now: Date, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.expire_paused_runs($1)", [now]).scalar(Int.self)
    }

    /// `pgflow.delete_old_runs`: deletes up to `batch` runs that ended more than `olderThan` seconds
    /// ago, with their states, task runs, logs and results; returns how many flow runs. History is
    /// partitioned by UTC week (0019): a whole week is dropped once all its runs ended more than
    /// `olderThan` ago (its runs all count, beyond `batch`), so a run goes between `olderThan` and
    /// `olderThan` + 7 days after it ended.
    public static func deleteOldRuns(olderThan seconds: Double, batch: Int, now: Date, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.delete_old_runs(make_interval(secs => $1), $2, $3)", [seconds, batch, now]).scalar(Int.self)
    }

    /// Applies the missed-run policy: among schedule-created runs still waiting more than `grace`
    /// seconds past their start, cancels those whose deployment's policy (or `defaultPolicy` where it
    /// has none) is `skip`, and for `latest` those with a newer due run of the same deployment.
    /// Runs an agent is claiming right now are skipped (locked). Returns how many runs were cancelled.
    public static func cancelMissedRuns(defaultPolicy: MissedRunPolicy, grace: Double, now: Date, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.cancel_missed_runs($1, make_interval(secs => $2), $3)", [defaultPolicy.rawValue, grace, now])
            .scalar(Int.self)
    }
}
