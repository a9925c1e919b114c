// PGFlowScheduler: the scheduler's duties, each a swift-service-lifecycle `Service` in its own file
// with a `Configuration` (documented defaults, `validate()`) and a `runOnce(now:)` that does one pass
// and returns counts. Tests call `runOnce` with an injected time; `run()` only ticks and logs.
//
// Several schedulers may run at once, with no leader lease: every duty is made of idempotent
// statements. Materialisation locks the schedules of a batch (FOR UPDATE SKIP LOCKED: another
// scheduler takes other schedules meanwhile), inserts through a unique key (one scheduler-made run per
// deployment and start) and never deletes a run that is still an occurrence of its schedule, so a
// scheduler with a lagging clock or window never undoes another's work; the maintenance functions lock
// what they change with FOR UPDATE SKIP LOCKED, so two passes at once split the work.
import Foundation
import Logging
import PGFlowPostgres
import ServiceLifecycle

/// A scheduler configuration value that cannot work, printable as one line that says what to do.
public struct SchedulerConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong and how to fix it.
    public let description: String

    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

/// Throws unless `seconds` is positive and finite.
func requirePositive(_ seconds: Double, _ name: String) throws(SchedulerConfigurationError) {
    guard seconds.isFinite, seconds > 0 else {
        throw SchedulerConfigurationError("\(name) must be a positive number of seconds, got \(seconds)")
    }
}

/// The settings every periodic duty has.
public protocol PeriodicDutyConfiguration: Sendable, Equatable {
    /// The defaults.
    init()
    /// Seconds between passes.
    var interval: Double { get }
    /// Throws a one-line error for settings that cannot work.
    func validate() throws(SchedulerConfigurationError)
}

/// What a periodic duty is: its settings, what one pass did, the pass itself and how to describe it.
/// A duty is a type of this kind (`ReaperPass`); `PeriodicService` runs it (`Reaper` is
/// `PeriodicService<ReaperPass>`).
public protocol DutyPass: Sendable {
    /// The duty's settings.
    associatedtype Configuration: PeriodicDutyConfiguration
    /// What one pass did.
    associatedtype Counts: Sendable
    /// The duty's name in logs and in `pgflow-scheduler --once`.
    static var name: String { get }
    /// One pass at `now`.
    static func runOnce(_ configuration: Configuration, pool: PostgresPool, logger: Logger, now: Date) async throws -> Counts
    /// A pass's counts as a line, or nil when it did nothing worth logging.
    static func describe(_ counts: Counts) -> String?
}

/// What `SchedulerConfiguration` needs of any periodic duty: a service with a name and a pass now.
public protocol PeriodicDutyService: Service {
    /// The duty's name.
    var name: String { get }
    /// One pass now, described in a line.
    func passNow() async throws -> String
}

/// A periodic duty as a `Service`: `run()` only ticks and logs; `runOnce(now:)` does one pass (tests
/// call it with an injected time).
public struct PeriodicService<Pass: DutyPass>: PeriodicDutyService {
    /// The duty's settings.
    public typealias Configuration = Pass.Configuration
    /// What one pass did.
    public typealias Counts = Pass.Counts

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

    /// The duty's name.
    public var name: String { Pass.name }

    /// Passes every `interval` (jittered) until the service group shuts down.
    public func run() async throws {
        try configuration.validate()
        await runPeriodically(every: .milliseconds(Int(configuration.interval * 1000)), name: Pass.name, logger: logger) {
            Pass.describe(try await runOnce())
        }
    }

    /// One pass at `now`.
    @discardableResult
    public func runOnce(now: Date = Date()) async throws -> Counts {
        try await Pass.runOnce(configuration, pool: pool, logger: logger, now: now)
    }

    /// One pass now, described in a line (`pgflow-scheduler --once`).
    public func passNow() async throws -> String { Pass.describe(try await runOnce()) ?? "nothing to do" }
}

/// Calls `pass` every `interval` (±10 % jitter, so many schedulers spread out) until the task is
/// cancelled or the service group shuts down gracefully; a failed pass is logged and retried next tick.
func runPeriodically(every interval: Duration, name: String, logger: Logger, _ pass: @escaping @Sendable () async throws -> String?) async {
    try? await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            do {
                if let summary = try await pass() { logger.info("\(name): \(summary)") }
            } catch is CancellationError {
                return
            } catch {
                logger.error("\(name) failed (retrying next tick): \(error)")
            }
            try await Task.sleep(for: interval * Double.random(in: 0.9...1.1))
        }
    }
}

/// Retries `body` when PostgreSQL reports a deadlock or a serialization failure (two schedulers
/// touching the same rows in one instant); other errors pass through.
func retryingConflicts<T>(attempts: Int = 4, _ body: () throws -> T) throws -> T {
    var attempt = 1
    while true {
        do {
            return try body()
        } catch let error as PostgresError
            where attempt < attempts && (error.sqlState == SQLState.deadlockDetected || error.sqlState == SQLState.serializationFailure) {
            attempt += 1
            usleep(useconds_t(Int.random(in: 1_000...20_000)))
        }
    }
}
