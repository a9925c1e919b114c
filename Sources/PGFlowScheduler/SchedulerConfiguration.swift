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
    /// Automations (the event evaluator); nil turns it off.
    public var events: EventEvaluator.Configuration? = EventEvaluator.Configuration()
    /// Webhook notifications; nil turns the sender off.
    public var notifications: NotificationSender.Configuration? = NotificationSender.Configuration()
    /// Event partitions and event retention; nil turns it off.
    public var eventMaintenance: EventMaintenanceService.Configuration? = EventMaintenanceService.Configuration()
    /// Only the event duties (evaluator, sender, event maintenance): `pgflow-scheduler --events-only`.
    public var eventsOnly = false

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
        try events?.validate()
        try notifications?.validate()
        try eventMaintenance?.validate()
        if eventsOnly && events == nil && notifications == nil && eventMaintenance == nil {
            throw SchedulerConfigurationError("--events-only with --no-events leaves nothing to run: pick one")
        }
    }

    /// The duties, each with its service and a one-pass runner (`pgflow-scheduler --once`).
    public func duties(pool: PostgresPool, logger: Logger) -> [SchedulerDuty] {
        var duties = eventsOnly ? [] : schedulingDuties(pool: pool, logger: logger)
        if let eventMaintenance {
            let service = EventMaintenanceService(configuration: eventMaintenance, pool: pool, logger: logger)
            duties.append(SchedulerDuty(name: service.name, service: service) { try await service.passNow() })
        }
        if let events {
            let service = EventEvaluator(configuration: events, pool: pool, logger: logger)
            duties.append(SchedulerDuty(name: "events", service: service) {
                let fired = try await service.drain() + service.runProactiveOnce()
                return "\(fired) action(s) fired"
            })
        }
        if let notifications {
            let service = NotificationSender(configuration: notifications, pool: pool, logger: logger)
            duties.append(SchedulerDuty(name: "notifications", service: service) {
                let c = try await service.runOnce()
                return "\(c.delivered) delivered, \(c.retrying) to retry, \(c.dead) dead"
            })
        }
        return duties
    }

    /// The duties of scheduling and maintenance (all but the event ones).
    private func schedulingDuties(pool: PostgresPool, logger: Logger) -> [SchedulerDuty] {
        var periodic: [any PeriodicDutyService] = [
            ScheduleMaterializer(configuration: materializer, pool: pool, logger: logger),
            LateRunService(configuration: lateRuns, pool: pool, logger: logger),
            Reaper(configuration: reaper, pool: pool, logger: logger),
            PauseExpiryService(configuration: pauseExpiry, pool: pool, logger: logger),
        ]
        if let retention { periodic.append(RetentionService(configuration: retention, pool: pool, logger: logger)) }
        var duties = periodic.map { duty in SchedulerDuty(name: duty.name, service: duty) { try await duty.passNow() } }
        if let dueRunNotifier {
            let service = DueRunNotifier(configuration: dueRunNotifier, pool: pool, logger: logger)
            duties.append(SchedulerDuty(name: "wake-ups", service: service) {
                let o = try await service.runOnce()
                return "\(o.notified.count) queue(s) woken"
            })
        }
        return duties
    }

    /// The services, ready for a `ServiceGroup` (the pool needs about one connection per service).
    public func services(pool: PostgresPool, logger: Logger) -> [any Service] {
        duties(pool: pool, logger: logger).map(\.service)
    }
}

/// One duty of a scheduler: its long-running service, and one pass of it described in a line.
public struct SchedulerDuty: Sendable {
    /// A short name (`schedules`).
    public let name: String
    /// The service a `ServiceGroup` runs.
    public let service: any Service
    /// One pass, described in a line.
    public let runOnce: @Sendable () async throws -> String

    /// Creates a duty.
    public init(name: String, service: any Service, runOnce: @escaping @Sendable () async throws -> String) {
        self.name = name
        self.service = service
        self.runOnce = runOnce
    }
}
