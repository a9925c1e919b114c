// SchedulePlan: the pure decision of the materialiser, tested without a database. Given a schedule,
// the future runs its deployment has, and the time, it says which future times the schedule's runs
// should be, or that nothing needs writing.
import Foundation
import PGFlowClient
import PGFlowSchedule

/// How far ahead runs are materialised.
public struct MaterializationWindow: Sendable, Equatable {
    /// Runs up to this many seconds ahead are created (default one day).
    public var horizon: Double = 86_400
    /// At most this many runs per schedule (default 100).
    public var maxRuns: Int = 100
    /// At least this many runs per schedule, looking up to `maxHorizon` ahead for rare schedules (default 3).
    public var minRuns: Int = 3
    /// How far ahead `minRuns` may reach (default 100 days).
    public var maxHorizon: Double = 100 * 86_400
    /// After an outage longer than the window, the most missed runs a `run_all` schedule gets back
    /// (the newest ones; default 100). `latest` gets exactly one, `skip` none.
    public var maxMissedRuns: Int = 100

    /// The defaults.
    public init() {}

    /// Throws unless the numbers make sense together.
    public func validate() throws(SchedulerConfigurationError) {
        try requirePositive(horizon, "the materialisation horizon")
        try requirePositive(maxHorizon, "the longest materialisation horizon")
        guard maxMissedRuns >= 0 else { throw SchedulerConfigurationError("the most missed runs per schedule must be 0 or more, got \(maxMissedRuns)") }
        guard maxRuns >= 1, minRuns >= 0, minRuns <= maxRuns else {
            throw SchedulerConfigurationError("runs per schedule: need 1 <= max (\(maxRuns)) and 0 <= min (\(minRuns)) <= max")
        }
    }
}

/// What the materialiser decides for one schedule.
public enum SchedulePlan {
    /// Builds the schedule a stored record describes.
    public static func schedule(for record: DeploymentScheduleRecord) throws(ScheduleError) -> Schedule {
        if record.kind == "interval" {
            guard let zone = TimeZone(identifier: record.timeZone) else { throw .unknownTimeZone(record.timeZone) }
            return .interval(try IntervalSchedule(
                every: record.intervalSeconds ?? 0, anchor: record.anchorDate ?? Schedule.defaultAnchor(in: zone), timeZone: zone))
        }
        return try Schedule(kind: record.kind, expression: record.expression ?? "", timeZone: record.timeZone, anchor: record.anchorDate)
    }

    /// The times the window wants after `now`.
    public static func wantedTimes(_ schedule: Schedule, now: Date, window: MaterializationWindow) -> [Date] {
        let times = schedule.dates(after: now, until: now.addingTimeInterval(window.horizon), limit: window.maxRuns)
        if times.count >= window.minRuns { return times }
        return schedule.dates(after: now, until: now.addingTimeInterval(window.maxHorizon), limit: window.minRuns)
    }

    /// The times a schedule missed while no scheduler created its runs: the occurrences after its last
    /// run (and after the schedule or its deployment last changed, so a pause is not an outage) up to
    /// `now`. `runAll`: the newest `window.maxMissedRuns` of them; `latest`: the newest one; `skip`: none.
    /// Empty while the schedule's runs reach past `now` (the normal case) or when it never had a run.
    public static func missedTimes(_ schedule: Schedule, record: DeploymentScheduleRecord, policy: MissedRunPolicy,
                                   now: Date, window: MaterializationWindow) -> [Date] {
        guard let last = record.lastRunTime, last < now else { return [] }
        let from = max(last, record.changedAt ?? last)
        let wanted = switch policy {
        case .skip: 0
        case .latest: 1
        case .runAll: window.maxMissedRuns
        }
        guard wanted > 0, from < now else { return [] }
        // Look back from `now` in doubling spans, so a year-long outage costs no year of iterations.
        var span = 3600.0
        while true {
            let start = max(from, now.addingTimeInterval(-span))
            let times = schedule.dates(after: start, until: now, limit: 1_000_000)
            if times.count >= wanted || start == from { return Array(times.suffix(wanted)) }
            span *= 2
        }
    }

    /// The full list of times to hand to `pgflow.schedule_flow_runs`, or nil when the database already
    /// has exactly what is wanted (nothing to insert, nothing to delete). `missed` (past times, from
    /// `missedTimes`) are created too.
    ///
    /// Existing replaceable runs that are still occurrences of the schedule are kept even beyond this
    /// window, so a scheduler whose clock or window lags another's never deletes runs the other made:
    /// only a changed schedule (or a paused deployment, an inactive schedule) removes future runs.
    public static func times(
        schedule: Schedule?, record: DeploymentScheduleRecord, existing: [ScheduledRunTime], now: Date, window: MaterializationWindow,
        missed: [Date] = []
    ) -> [Date]? {
        let mine = existing.filter { $0.scheduleID == record.id && $0.replaceable }
        var times: [Date] = []
        if record.wantsRuns, let schedule {
            times = wantedTimes(schedule, now: now, window: window)
            let taken = Set(existing.map { key($0.time) })
            let needsInsert = times.contains { !taken.contains(key($0)) }
            let wantedKeys = Set(times.map(key))
            let kept = mine.filter { !wantedKeys.contains(key($0.time)) && isOccurrence($0.time, of: schedule) }.map(\.time)
            times = (times + kept).sorted()
            let keys = Set(times.map(key))
            let needsDelete = mine.contains { !keys.contains(key($0.time)) }
            return needsInsert || needsDelete || !missed.isEmpty ? missed + times : nil
        }
        return mine.isEmpty ? nil : []
    }

    /// True when `date` is one of the schedule's times (to the millisecond).
    public static func isOccurrence(_ date: Date, of schedule: Schedule) -> Bool {
        !schedule.dates(after: date.addingTimeInterval(-0.001), until: date.addingTimeInterval(0.001), limit: 1).isEmpty
    }

    private static func key(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
}
