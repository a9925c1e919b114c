// Reaper: agents that stopped heartbeating go offline and their runs crash (slots released, retried
// per policy); expired concurrency slot leases are deleted.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Cleans up after dead agents and dead lease holders; idempotent, safe in many schedulers at once.
public struct Reaper: Service {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
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

    /// The settings.
    public let configuration: Configuration
    private let pool: PostgresPool
    private let logger: Logger

    /// Creates the service.
    public init(configuration: Configuration = .init(), pool: PostgresPool, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.logger = logger
    }

    /// Passes every `interval` until shutdown.
    public func run() async throws {
        try configuration.validate()
        await runPeriodically(every: .milliseconds(Int(configuration.interval * 1000)), name: "reaper", logger: logger) {
            let c = try await runOnce()
            return c.crashed == 0 && c.expiredLeases == 0 ? nil : "\(c.crashed) run(s) of dead agents ended, \(c.expiredLeases) expired lease(s) released"
        }
    }

    /// One pass.
    @discardableResult
    public func runOnce(now: Date = Date()) async throws -> Counts {
        try await pool.withConnection { [configuration] c in
            var counts = Counts()
            counts.crashed = try retryingConflicts {
                try PGFlowClient.reapCrashedRuns(heartbeatTimeout: configuration.heartbeatTimeout, now: now, on: c)
            }
            counts.expiredLeases = try retryingConflicts { try PGFlowClient.releaseExpiredSlots(now: now, on: c) }
            return counts
        }
    }
}
