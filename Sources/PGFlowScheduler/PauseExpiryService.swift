// PauseExpiryService: paused runs past their pause timeout fail as TimedOut.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Fails paused runs whose timeout passed; idempotent, safe in many schedulers at once.
public struct PauseExpiryService: Service {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
        /// Seconds between passes (default 5).
        public var interval: Double = 5

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            try requirePositive(interval, "the pause-expiry interval")
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
        await runPeriodically(every: .milliseconds(Int(configuration.interval * 1000)), name: "pause expiry", logger: logger) {
            let n = try await runOnce()
            return n == 0 ? nil : "\(n) paused run(s) failed as TimedOut"
        }
    }

    /// One pass; returns how many runs failed.
    @discardableResult
    public func runOnce(now: Date = Date()) async throws -> Int {
        try await pool.withConnection { c in try retryingConflicts { try PGFlowClient.expirePausedRuns(now: now, on: c) } }
    }
}
