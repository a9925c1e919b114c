// RetentionService: removes finished runs (with their states, task runs, logs and results) older than
// a configurable age. Each batch is one call of pgflow.delete_old_runs, its own short transaction: since
// 0019 it creates the history's week partitions (UTC weeks, Monday to Monday; the next one 2 days ahead),
// drops whole weeks whose runs all ended more than the age ago (DROP TABLE, no row-by-row DELETE), then
// deletes by row what is left (docs/scaling.md). Retention therefore works in weeks: a run is removed
// between the age and the age + 7 days after it ended.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Deletes old finished runs; safe in many schedulers at once (batches lock with SKIP LOCKED).
public typealias RetentionService = PeriodicService<RetentionPass>

/// What the RetentionService does in one pass (run by `PeriodicService`).
public enum RetentionPass: DutyPass {
    /// Settings.
    public struct Configuration: PeriodicDutyConfiguration {
        /// Seconds between passes (default 600).
        public var interval: Double = 600
        /// Runs that ended more than this many seconds ago are deleted (default 30 days), by whole UTC
        /// weeks: a run goes between this age and this age + 7 days after it ended.
        public var maxAge: Double = 30 * 86_400
        /// Runs per batch (one transaction each; default 1000).
        public var batchSize: Int = 1000
        /// The most batches in one pass (default 100); the next pass goes on.
        public var maxBatchesPerPass: Int = 100

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            try requirePositive(interval, "the retention interval")
            try requirePositive(maxAge, "the retention age")
            guard batchSize >= 1, maxBatchesPerPass >= 1 else {
                throw SchedulerConfigurationError("retention batches: need a batch size and a number of batches of 1 or more")
            }
        }
    }

    /// The duty's name in logs.
    public static let name = "retention"

    /// A pass's counts as a line, or nil when it did nothing worth logging.
    public static func describe(_ c: Int) -> String? {
        c == 0 ? nil : "\(c) old run(s) deleted"
    }

    /// One pass: batches until one comes back short or `maxBatchesPerPass`; returns runs deleted.
    public static func runOnce(_ configuration: Configuration, pool: PostgresPool, logger: Logger, now: Date) async throws -> Int {
        var total = 0
        for _ in 0..<configuration.maxBatchesPerPass {
            try Task.checkCancellation()
            let deleted = try await pool.withConnection { c in
                try retryingConflicts {
                    try PGFlowClient.deleteOldRuns(olderThan: configuration.maxAge, batch: configuration.batchSize, now: now, on: c)
                }
            }
            total += deleted
            if deleted < configuration.batchSize { break }
        }
        return total
    }
}
