// LateRunService: Scheduled runs past their start by more than a threshold become Late, and runs
// missed while nothing ran them are handled by their deployment's missed-run policy (run all, run
// only the latest, or skip).
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Marks late runs and applies the missed-run policy; idempotent, safe in many schedulers at once.
public typealias LateRunService = PeriodicService<LateRunPass>

/// What the LateRunService does in one pass (run by `PeriodicService`).
public enum LateRunPass: DutyPass {
    /// Settings.
    public struct Configuration: PeriodicDutyConfiguration {
        /// Seconds between passes (default 5).
        public var interval: Double = 5
        /// A Scheduled run this many seconds past its start is Late (default 15, as in Prefect).
        public var lateThreshold: Double = 15
        /// A scheduled run still waiting this many seconds past its start counts as missed (default 300).
        public var missedGrace: Double = 300
        /// The policy for deployments that set none (default: run all).
        public var defaultMissedRunPolicy: MissedRunPolicy = .runAll

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            try requirePositive(interval, "the late-run interval")
            try requirePositive(lateThreshold, "the late-run threshold")
            try requirePositive(missedGrace, "the missed-run grace period")
        }
    }

    /// What one pass did.
    public struct Counts: Sendable, Equatable {
        /// Runs marked Late.
        public var late = 0
        /// Missed runs cancelled by their policy.
        public var cancelled = 0

        /// Creates counts.
        public init(late: Int = 0, cancelled: Int = 0) {
            self.late = late
            self.cancelled = cancelled
        }
    }

    /// The duty's name in logs.
    public static let name = "late runs"

    /// A pass's counts as a line, or nil when it did nothing worth logging.
    public static func describe(_ c: Counts) -> String? {
        c.late == 0 && c.cancelled == 0 ? nil : "\(c.late) run(s) marked Late, \(c.cancelled) missed run(s) cancelled by policy"
    }

    /// One pass: mark late runs, then apply the missed-run policies.
    public static func runOnce(_ configuration: Configuration, pool: PostgresPool, logger: Logger, now: Date) async throws -> Counts {
        try await pool.withConnection { c in
            var counts = Counts()
            counts.late = try retryingConflicts { try PGFlowClient.markLateRuns(threshold: configuration.lateThreshold, now: now, on: c) }
            counts.cancelled = try retryingConflicts {
                try PGFlowClient.cancelMissedRuns(
                    defaultPolicy: configuration.defaultMissedRunPolicy, grace: configuration.missedGrace, now: now, on: c)
            }
            return counts
        }
    }
}
