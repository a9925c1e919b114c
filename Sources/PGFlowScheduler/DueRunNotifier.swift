// DueRunNotifier: wakes agents the moment scheduled runs fall due. Enqueueing a run that is due at
// once NOTIFYs its queue, but a run materialised hours ahead becomes due silently and agents would
// find it only at their next poll (≈1 s). This service sleeps until the next waiting run of any queue
// falls due and then NOTIFYs that queue, so scheduled runs start within milliseconds of their time.
// Correctness never depends on it: agents poll anyway; many schedulers just send repeated NOTIFYs.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle
import Synchronization

/// Sends `pgflow_runs` notifications when waiting runs fall due.
public final class DueRunNotifier: Service, Sendable {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
        /// The longest sleep between looks, in seconds, so newly scheduled runs are seen (default 1).
        public var maxSleep: Double = 1

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            try requirePositive(maxSleep, "the due-run notifier's longest sleep")
        }
    }

    /// What one look found.
    public struct Outcome: Sendable, Equatable {
        /// Queues notified because runs fell due since the previous look.
        public var notified: [String] = []
        /// The earliest time a waiting run falls due after now, if any.
        public var nextDue: Date?

        /// Creates an outcome.
        public init(notified: [String] = [], nextDue: Date? = nil) {
            self.notified = notified
            self.nextDue = nextDue
        }
    }

    /// The settings.
    public let configuration: Configuration
    private let pool: PostgresPool
    private let logger: Logger
    private let lastLook = Mutex<Date?>(nil)

    /// Creates the service.
    public init(configuration: Configuration = .init(), pool: PostgresPool, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.logger = logger
    }

    /// Sleeps until the next run falls due (at most `maxSleep`), notifies, repeats, until shutdown.
    public func run() async throws {
        try configuration.validate()
        try? await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                var sleep = configuration.maxSleep
                do {
                    let outcome = try await runOnce()
                    if let next = outcome.nextDue { sleep = min(sleep, max(0, next.timeIntervalSinceNow) + 0.002) }
                } catch {
                    logger.error("due-run notifier failed (retrying): \(error)")
                }
                try await Task.sleep(for: .milliseconds(Int(sleep * 1000)))
            }
        }
    }

    /// One look: notifies the queues with runs that fell due in (previous look, now] and returns the
    /// next time one falls due. The first look only finds the next time.
    @discardableResult
    public func runOnce(now: Date = Date()) async throws -> Outcome {
        let since = lastLook.withLock { $0 } ?? now
        let outcome = try await pool.withConnection { c in
            let dues = try PGFlowClient.nextDueTimes(after: since, on: c)
            let queues = dues.filter { $0.due <= now }.map(\.queue).sorted()
            try PGFlowClient.notifyRunsDue(queues: queues, on: c)
            return Outcome(notified: queues, nextDue: queues.isEmpty ? dues.map(\.due).min()
                           : try PGFlowClient.nextDueTimes(after: now, on: c).map(\.due).min())
        }
        lastLook.withLock { $0 = now }
        return outcome
    }
}
