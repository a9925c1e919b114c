// PauseExpiryService: paused runs past their pause timeout fail as TimedOut.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Fails paused runs whose timeout passed; idempotent, safe in many schedulers at once.
public typealias PauseExpiryService = PeriodicService<PauseExpiryPass>

/// What the PauseExpiryService does in one pass (run by `PeriodicService`).
public enum PauseExpiryPass: DutyPass {
    /// Settings.
    public struct Configuration: PeriodicDutyConfiguration {
        /// Seconds between passes (default 5).
        public var interval: Double = 5

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            try requirePositive(interval, "the pause-expiry interval")
        }
    }

    /// The duty's name in logs.
    public static let name = "pause expiry"

    /// A pass's counts as a line, or nil when it did nothing worth logging.
    public static func describe(_ c: Int) -> String? {
        c == 0 ? nil : "\(c) paused run(s) failed as TimedOut"
    }

    /// One pass; returns how many runs failed.
    public static func runOnce(_ configuration: Configuration, pool: PostgresPool, logger: Logger, now: Date) async throws -> Int {
        try await pool.withConnection { c in try retryingConflicts { try PGFlowClient.expirePausedRuns(now: now, on: c) } }
    }
}
