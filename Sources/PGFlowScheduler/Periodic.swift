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
