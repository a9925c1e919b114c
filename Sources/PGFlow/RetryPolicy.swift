import Foundation
import PGFlowClient

/// How a failed task run or flow run is retried. The policy is stored on the run's row, so PostgreSQL
/// decides each retry (Failed → AwaitingRetry at now + delay, visible in the state history) and the
/// SDK waits until the scheduled time before running again.
///
/// ```swift
/// RetryPolicy(count: 3, delay: .exponential(base: 1, cap: 30), jitter: 0.2) { error in !(error is ValidationError) }
/// ```
public struct RetryPolicy: Sendable {
    /// The delay before each retry, in seconds.
    public enum Delay: Sendable, Equatable {
        /// The same delay before every retry.
        case fixed(Double)
        /// One delay per retry; the last one repeats.
        case list([Double])
        /// `base * 2^(retry-1)`, at most `cap` (nil: no cap).
        case exponential(base: Double, cap: Double? = nil)
    }

    /// How many times a failed run runs again.
    public var count: Int
    /// The delay before each retry.
    public var delay: Delay
    /// Each delay grows by up to this factor at random (0.2 = up to 20 %).
    public var jitter: Double
    /// Decides whether an error is worth a retry (nil: every error is).
    public var condition: (@Sendable (any Error) -> Bool)?

    /// No retries.
    public static let none = RetryPolicy(count: 0)

    /// Creates a policy.
    public init(count: Int, delay: Delay = .fixed(0), jitter: Double = 0, retryIf condition: (@Sendable (any Error) -> Bool)? = nil) {
        self.count = max(0, count)
        self.delay = delay
        self.jitter = max(0, jitter)
        self.condition = condition
    }

    /// The policy as the SQL functions store it. An exponential backoff with a cap becomes the list of
    /// its capped delays (the SQL exponential backoff has no cap).
    var sql: SQLRetryPolicy {
        switch delay {
        case .fixed(let s):
            return SQLRetryPolicy(retries: count, backoff: "fixed", delays: [max(0, s)], jitter: jitter)
        case .list(let delays):
            return SQLRetryPolicy(retries: count, backoff: "list", delays: delays.isEmpty ? [0] : delays.map { max(0, $0) }, jitter: jitter)
        case .exponential(let base, nil):
            return SQLRetryPolicy(retries: count, backoff: "exponential", delays: [max(0, base)], jitter: jitter)
        case .exponential(let base, let cap?):
            let delays = (0..<max(1, count)).map { min(cap, max(0, base) * pow(2, Double($0))) }
            return SQLRetryPolicy(retries: count, backoff: "list", delays: delays, jitter: jitter)
        }
    }

    /// Whether `error` may be retried under the condition.
    func allows(_ error: any Error) -> Bool { condition?(error) ?? true }
}
