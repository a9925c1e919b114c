// EventMaintenanceService: keeps pgflow.events' day partitions (created ahead) and drops the ones
// older than the event retention (a DROP TABLE per day: no row-by-row delete).
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Creates event partitions ahead and drops old ones.
public typealias EventMaintenanceService = PeriodicService<EventMaintenancePass>

/// What the EventMaintenanceService does in one pass.
public enum EventMaintenancePass: DutyPass {
    /// Settings.
    public struct Configuration: PeriodicDutyConfiguration {
        /// Seconds between passes (default 600).
        public var interval: Double = 600
        /// Events older than this many seconds are dropped (default 7 days).
        public var retention: Double = 7 * 86_400

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            try requirePositive(interval, "the event maintenance interval")
            guard retention >= 3600 else {
                throw SchedulerConfigurationError("the event retention must be 1 hour or more, got \(retention) s")
            }
        }
    }

    /// The duty's name in logs.
    public static let name = "event partitions"

    /// A pass's counts as a line, or nil when it did nothing worth logging.
    public static func describe(_ m: EventMaintenance) -> String? {
        m.created + m.dropped + m.deleted == 0 ? nil
            : "\(m.created) partition(s) created, \(m.dropped) dropped, \(m.deleted) old event(s) deleted"
    }

    /// One pass.
    public static func runOnce(_ configuration: Configuration, pool: PostgresPool, logger: Logger, now: Date) async throws -> EventMaintenance {
        try await pool.withConnection { c in try PGFlowClient.maintainEvents(retention: configuration.retention, now: now, on: c) }
    }
}
