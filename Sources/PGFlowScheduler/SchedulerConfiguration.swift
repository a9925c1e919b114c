// SchedulerConfiguration: the settings of every duty, and the services a scheduler process runs.
import Foundation
import Logging
import PGFlowPostgres
import ServiceLifecycle

/// Everything a `pgflow-scheduler` process runs, with its settings.
public struct SchedulerConfiguration: Sendable, Equatable {
    /// Schedule materialisation.
    public var materializer = ScheduleMaterializer.Configuration()
    /// Late runs and the missed-run policy.
    public var lateRuns = LateRunService.Configuration()
    /// Crashed agents and expired leases.
    public var reaper = Reaper.Configuration()
    /// Paused runs past their timeout.
    public var pauseExpiry = PauseExpiryService.Configuration()
    /// Deleting old finished runs; nil turns retention off.
    public var retention: RetentionService.Configuration? = RetentionService.Configuration()
    /// Waking agents when scheduled runs fall due; nil turns it off (agents then find them by polling).
    public var dueRunNotifier: DueRunNotifier.Configuration? = DueRunNotifier.Configuration()

    /// The defaults.
    public init() {}

    /// Throws the first setting that cannot work, as one line.
    public func validate() throws(SchedulerConfigurationError) {
        try materializer.validate()
        try lateRuns.validate()
        try reaper.validate()
        try pauseExpiry.validate()
        try retention?.validate()
        try dueRunNotifier?.validate()
    }

    /// The services, ready for a `ServiceGroup` (the pool needs about one connection per service).
    public func services(pool: PostgresPool, logger: Logger) -> [any Service] {
        var services: [any Service] = [
            ScheduleMaterializer(configuration: materializer, pool: pool, logger: logger),
            LateRunService(configuration: lateRuns, pool: pool, logger: logger),
            Reaper(configuration: reaper, pool: pool, logger: logger),
            PauseExpiryService(configuration: pauseExpiry, pool: pool, logger: logger),
        ]
        if let retention { services.append(RetentionService(configuration: retention, pool: pool, logger: logger)) }
        if let dueRunNotifier { services.append(DueRunNotifier(configuration: dueRunNotifier, pool: pool, logger: logger)) }
        return services
    }
}
