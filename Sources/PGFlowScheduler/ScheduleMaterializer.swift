// ScheduleMaterializer: creates the Scheduled runs of every deployment schedule ahead of time, in a
// window (a horizon and a max count per schedule), and replaces the future runs of a changed schedule.
// After an outage longer than the window it also creates the runs the schedule missed, as the
// deployment's missed-run policy says (SchedulePlan.missedTimes); LateRunService then cancels the
// older missed runs of `latest` and `skip` deployments.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import PGFlowSchedule
import ServiceLifecycle

/// Materialises scheduled runs; safe to run in many schedulers at once. Each batch is one transaction
/// that locks its schedule rows (`FOR UPDATE SKIP LOCKED`: another scheduler skips them and takes the
/// next ones), reads the runs the deployments have, and writes only what differs; inserts go through
/// the unique key (deployment, start), and `SchedulePlan.times` never drops another scheduler's runs.
public typealias ScheduleMaterializer = PeriodicService<MaterializationPass>

/// What the ScheduleMaterializer does in one pass (run by `PeriodicService`).
public enum MaterializationPass: DutyPass {
    /// Settings.
    public struct Configuration: PeriodicDutyConfiguration {
        /// Seconds between passes (default 10).
        public var interval: Double = 10
        /// How far ahead and how many runs.
        public var window = MaterializationWindow()
        /// Schedules handled per statement (default 500).
        public var batchSize: Int = 500
        /// The missed-run policy of deployments that set none (default: run all, up to `window.maxMissedRuns`).
        public var defaultMissedRunPolicy: MissedRunPolicy = .runAll

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            try requirePositive(interval, "the materialiser interval")
            try window.validate()
            guard batchSize >= 1 else { throw SchedulerConfigurationError("the materialiser batch size must be 1 or more, got \(batchSize)") }
        }
    }

    /// What one pass did.
    public struct Counts: Sendable, Equatable {
        /// Schedules looked at.
        public var schedules = 0
        /// Schedules whose runs were written.
        public var changed = 0
        /// Runs created.
        public var inserted = 0
        /// Future runs deleted (changed, inactive or paused schedules).
        public var deleted = 0
        /// Missed runs asked for after an outage (their policy's share; included in `inserted`).
        public var missed = 0
        /// Schedules skipped because their expression does not parse.
        public var invalid = 0

        /// Zero counts.
        public init() {}
    }

    /// The duty's name in logs.
    public static let name = "schedules"

    /// A pass's counts as a line, or nil when it did nothing worth logging.
    public static func describe(_ c: Counts) -> String? {
        c.changed == 0 && c.invalid == 0 ? nil
            : "\(c.inserted) run(s) created (\(c.missed) missed), \(c.deleted) replaced, \(c.changed) of \(c.schedules) schedule(s) changed, \(c.invalid) invalid"
    }

    /// One pass over every schedule, `batchSize` at a time, each batch in one statement.
    public static func runOnce(_ configuration: Configuration, pool: PostgresPool, logger: Logger, now: Date) async throws -> Counts {
        var total = Counts()
        var after: UUID? = nil
        while true {
            let cursor = after
            let (last, counts, invalid) = try await pool.withConnection { c in
                try retryingConflicts { try c.withTransaction { try Self.pass(after: cursor, now: now, configuration: configuration, on: $0) } }
            }
            for (record, error) in invalid {
                logger.warning("schedule \(record.id) of deployment \(record.deploymentID) skipped: \(error)")
            }
            total.schedules += counts.schedules
            total.changed += counts.changed
            total.inserted += counts.inserted
            total.deleted += counts.deleted
            total.invalid += counts.invalid
            total.missed += counts.missed
            guard let last, counts.schedules == configuration.batchSize else { return total }
            after = last
        }
    }

    private static func pass(after: UUID?, now: Date, configuration: Configuration, on c: PostgresConnection) throws
        -> (UUID?, Counts, [(DeploymentScheduleRecord, ScheduleError)]) {
        let records = try PGFlowClient.deploymentSchedules(after: after, limit: configuration.batchSize, lock: true, on: c)
        var counts = Counts()
        counts.schedules = records.count
        if records.isEmpty { return (nil, counts, []) }
        let existing = try PGFlowClient.scheduledRunTimes(deploymentIDs: Array(Set(records.map(\.deploymentID))), after: now, on: c)
        var invalid: [(DeploymentScheduleRecord, ScheduleError)] = []
        var batch: [(scheduleID: UUID, times: [Date])] = []
        for record in records {
            var schedule: Schedule?
            if record.wantsRuns {
                do {
                    schedule = try SchedulePlan.schedule(for: record)
                } catch {
                    invalid.append((record, error))
                    continue
                }
            }
            let missed = schedule.map {
                SchedulePlan.missedTimes($0, record: record, policy: record.missedRunPolicy ?? configuration.defaultMissedRunPolicy,
                                         now: now, window: configuration.window)
            } ?? []
            counts.missed += missed.count
            if let times = SchedulePlan.times(
                schedule: schedule, record: record, existing: existing[record.deploymentID] ?? [], now: now, window: configuration.window,
                missed: missed) {
                batch.append((record.id, times))
            }
        }
        counts.invalid = invalid.count
        counts.changed = batch.count
        let written = try PGFlowClient.scheduleFlowRuns(batch, now: now, on: c)
        counts.inserted = written.inserted
        counts.deleted = written.deleted
        return (records.last?.id, counts, invalid)
    }
}
