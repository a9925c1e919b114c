// Reaper: agents that stopped heartbeating go offline and their runs crash (slots released, retried
// per policy); expired concurrency slot leases are deleted.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Cleans up after dead agents and dead lease holders; idempotent, safe in many schedulers at once.
public typealias Reaper = PeriodicService<ReaperPass>

/// What the Reaper does in one pass (run by `PeriodicService`).
public enum ReaperPass: DutyPass {
    /// Settings.
    public struct Configuration: PeriodicDutyConfiguration {
        /// Seconds between passes (default 10).
        public var interval: Double = 10
        /// An agent silent this many seconds is dead (default 60; agents heartbeat every 5 s).
        public var heartbeatTimeout: Double = 60

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            try requirePositive(interval, "the reaper interval")
            try requirePositive(heartbeatTimeout, "the heartbeat timeout")
        }
    }

    /// What one pass did.
    public struct Counts: Sendable, Equatable {
        /// Runs of dead agents ended (Crashed, retried, or Cancelled if they were cancelling).
        public var crashed = 0
        /// Expired slot lease rows deleted.
        public var expiredLeases = 0

        /// Creates counts.
        public init(crashed: Int = 0, expiredLeases: Int = 0) {
            self.crashed = crashed
            self.expiredLeases = expiredLeases
        }
    }

    /// The duty's name in logs.
    public static let name = "reaper"

    /// A pass's counts as a line, or nil when it did nothing worth logging.
    public static func describe(_ c: Counts) -> String? {
        c.crashed == 0 && c.expiredLeases == 0 ? nil : "\(c.crashed) run(s) of dead agents ended, \(c.expiredLeases) expired lease(s) released"
    }

    /// One pass.
    public static func runOnce(_ configuration: Configuration, pool: PostgresPool, logger: Logger, now: Date) async throws -> Counts {
        try await pool.withConnection { c in
            var counts = Counts()
            counts.crashed = try retryingConflicts {
                try PGFlowClient.reapCrashedRuns(heartbeatTimeout: configuration.heartbeatTimeout, now: now, on: c)
            }
            counts.expiredLeases = try retryingConflicts { try PGFlowClient.releaseExpiredSlots(now: now, on: c) }
            return counts
        }
    }
}
