// RetentionService: deletes finished runs (with their states, task runs, logs and results) older than
// a configurable age, in small batches, each its own short transaction, so the hot path never waits.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Deletes old finished runs; safe in many schedulers at once (batches lock with SKIP LOCKED).
public struct RetentionService: Service {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
        /// Seconds between passes (default 600).
        public var interval: Double = 600
        /// Runs that ended more than this many seconds ago are deleted (default 30 days).
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
        await runPeriodically(every: .milliseconds(Int(configuration.interval * 1000)), name: "retention", logger: logger) {
            let n = try await runOnce()
            return n == 0 ? nil : "\(n) old run(s) deleted"
        }
    }

    /// One pass: batches until one comes back short or `maxBatchesPerPass`; returns runs deleted.
    @discardableResult
    public func runOnce(now: Date = Date()) async throws -> Int {
        var total = 0
        for _ in 0..<configuration.maxBatchesPerPass {
            try Task.checkCancellation()
            let deleted = try await pool.withConnection { [configuration] c in
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
