// EventEvaluator: runs automations (docs/events.md). Stateless: everything it knows is in the
// database. It LISTENs on `pgflow_events` (sent when an event is appended while an automation is
// active) and polls, and on each wake-up calls `pgflow.evaluate_events` until the shards it can lock
// are drained: each call locks shards with SKIP LOCKED (so any number of evaluators share the work),
// reads their events by cursor, fires the actions and moves the cursors in one transaction. Each action
// fires once per triggering event through the UNIQUE key of its firing row, also when an evaluator
// dies mid-pass (its transaction rolls back; another evaluator does the pass again). A second loop
// runs `pgflow.evaluate_proactive` (waits that ran out) every `proactiveInterval`.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// Evaluates events against automations and fires their actions.
public struct EventEvaluator: Service, Sendable {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
        /// Events per pass (one transaction), default 1000.
        public var batchSize = 1000
        /// Shards one pass may lock (of 8), default 8; fewer spreads a burst over more evaluators.
        public var maxShards = 8
        /// Seconds between looks when no NOTIFY arrives (default 1).
        public var pollInterval: Double = 1
        /// Seconds between proactive passes (default 1).
        public var proactiveInterval: Double = 1
        /// The URL of its LISTEN connection (nil: the pool's). LISTEN needs a session: behind a
        /// transaction-mode PgBouncer, PostgreSQL's own URL (`pgflow-scheduler --listen-database-url`).
        public var listenDatabaseURL: String?

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            guard (1...100_000).contains(batchSize) else {
                throw SchedulerConfigurationError("the event batch size must be 1 to 100000, got \(batchSize)")
            }
            guard (1...8).contains(maxShards) else {
                throw SchedulerConfigurationError("the evaluator's shards per pass must be 1 to 8, got \(maxShards)")
            }
            try requirePositive(pollInterval, "the event poll interval")
            try requirePositive(proactiveInterval, "the proactive trigger interval")
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

    /// Evaluates on every wake-up until the service group shuts down.
    public func run() async throws {
        try configuration.validate()
        // true: a NOTIFY (an event was committed), false: the poll
        let (wakes, wake) = AsyncStream<Bool>.makeStream(bufferingPolicy: .bufferingNewest(1))
        try? await cancelWhenGracefulShutdown { [self] in
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [pool, configuration] in
                    var listening = pool.configuration
                    if let url = configuration.listenDatabaseURL { listening.conninfo = url }
                    for await _ in PostgresListener.listen(configuration: listening, channels: ["pgflow_events"]) {
                        wake.yield(true)
                    }
                }
                group.addTask { [configuration] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(Int(configuration.pollInterval * 1000)))
                        wake.yield(false)
                    }
                }
                group.addTask { [self] in
                    await runPeriodically(every: .milliseconds(Int(configuration.proactiveInterval * 1000)), name: "proactive triggers", logger: logger) {
                        let fired = try await runProactiveOnce()
                        return fired == 0 ? nil : "\(fired) action(s) fired"
                    }
                }
                group.addTask { [self] in
                    for await notified in wakes {
                        if Task.isCancelled { break }
                        do {
                            let fired = try await drain(retryIfNothing: notified)
                            if fired > 0 { logger.debug("events: \(fired) action(s) fired") }
                        } catch is CancellationError {
                            break
                        } catch {
                            logger.error("event evaluation failed (retrying at the next wake-up): \(error)")
                        }
                    }
                }
                await group.next()
                group.cancelAll()
                wake.finish()
            }
        }
    }

    /// Passes until the lockable shards are drained; returns the actions fired. A NOTIFY may come
    /// before its event is below the transaction horizon (an older transaction still running): with
    /// `retryIfNothing`, a drain whose first pass reads nothing tries again 2, 4, 8 and 16 ms later.
    /// Once a pass has read events, the first empty pass ends the drain (the next NOTIFY starts another).
    public func drain(retryIfNothing: Bool = false) async throws -> Int {
        var fired = 0
        var readAny = false
        var idleRetries = 0
        while !Task.isCancelled {
            let pass = try await runOnce()
            fired += pass.firings
            if pass.events > 0 {
                readAny = true
                continue
            }
            if readAny || !retryIfNothing || idleRetries >= 4 { break }
            try await Task.sleep(for: .milliseconds(2 << idleRetries))
            idleRetries += 1
        }
        return fired
    }

    /// One pass (one transaction), optionally at an injected time.
    @discardableResult
    public func runOnce(now: Date? = nil) async throws -> EventEvaluation {
        try await pool.withConnection { [configuration] c in
            try retryingConflicts {
                try PGFlowClient.evaluateEvents(limit: configuration.batchSize, maxShards: configuration.maxShards, now: now, on: c)
            }
        }
    }

    /// One proactive pass, optionally at an injected time; returns the actions fired.
    @discardableResult
    public func runProactiveOnce(now: Date? = nil) async throws -> Int {
        try await pool.withConnection { c in try retryingConflicts { try PGFlowClient.evaluateProactive(now: now, on: c) } }
    }
}
