// RunFollower: follows a flow run until it ends, through LISTEN/NOTIFY. While a watcher holds a lease
// (0027: the follower takes one, `pgflow.renew_stream_listener`, and renews it every 20 s) the engine
// NOTIFYs `pgflow_flow_run_states` on every state and `pgflow_logs` on every log batch; on each wake-up
// the follower reads the run's states and log lines after the last ids it saw, so every state the run
// passed through is reported once and in order (Scheduled, Pending, Running, Completed even for a run
// faster than any poll). A wake-up every few seconds covers a lost connection; nothing spins.
import Foundation
import PGFlowClient
import PGFlowPostgres
import Synchronization

/// Follows one flow run.
public struct RunFollower: Sendable {
    /// Something the run did.
    public enum Event: Sendable, Equatable {
        /// It entered a state.
        case state(FlowRunStateEntry)
        /// It logged a line.
        case log(FlowRunLogLine)
    }

    /// The database (the follower opens its own listening connection).
    public let configuration: PostgresConfiguration
    /// Seconds between looks when no notification arrives (default 5).
    public var fallbackInterval: Double = 5

    /// Creates a follower.
    public init(configuration: PostgresConfiguration) {
        self.configuration = configuration
    }

    /// Reports states (and, with `logs`, log lines) through `emit` until the run ends; returns its final
    /// state. Everything the run did before is reported first.
    public func follow(_ id: UUID, states: Bool = true, logs: Bool = false, on c: PostgresConnection, emit: (Event) -> Void) async throws -> FlowRunStateEntry {
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let asked = WakeReasons()  // what the wake-ups asked for (they coalesce in the stream)
        let channels = logs ? ["pgflow_flow_run_states", "pgflow_logs"] : ["pgflow_flow_run_states"]
        let listener = Task { [configuration] in
            for await _ in PostgresListener.listen(configuration: configuration, channels: channels) { asked.counts.withLock { $0.looks += 1 }; wake.yield() }
        }
        let ticker = Task { [fallbackInterval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int(fallbackInterval * 1000)))
                asked.counts.withLock { $0.looks += 1 }
                wake.yield()
            }
        }
        // the lease's renewals wake the loop without a look (a test with a long fallback interval sees
        // only what the notifications wake)
        let renewer = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(20))
                asked.counts.withLock { $0.renewals += 1 }
                wake.yield()
            }
        }
        defer {
            listener.cancel()
            ticker.cancel()
            renewer.cancel()
            wake.finish()
        }
        var lastState: Int64 = 0, lastLog: Int64 = 0
        var latest: FlowRunStateEntry?
        func look() throws -> FlowRunStateEntry? {
            for state in try PGFlowClient.flowRunStates(id, after: lastState, on: c) {
                lastState = state.id
                latest = state
                if states { emit(.state(state)) }
            }
            if logs {
                for line in try PGFlowClient.flowRunLogLines(id, after: lastLog, on: c) {
                    lastLog = line.id
                    emit(.log(line))
                }
            }
            if let latest, latest.isTerminal { return latest }
            return nil
        }
        // the lease that turns the followers' notifications on (without one the engine sends none; an
        // abandoned lease lapses after a minute)
        let lease = UUID()
        try PGFlowClient.renewStreamListener(lease, leaseSeconds: 60, on: c)
        defer { try? PGFlowClient.dropStreamListener(lease, on: c) }
        if let done = try look() { return done }
        var handled = (looks: 0, renewals: 0)
        for await _ in wakes {
            let now = asked.counts.withLock { $0 }
            if now.renewals > handled.renewals {
                try PGFlowClient.renewStreamListener(lease, leaseSeconds: 60, on: c)
                handled.renewals = now.renewals
            }
            if now.looks == handled.looks { continue }
            handled.looks = now.looks
            if let done = try look() {
                if logs { _ = try look() }  // lines written with the final state's transaction or just before
                return done
            }
        }
        throw CancellationError()
    }
}

/// The follower's wake-ups by reason: looks (a notification, the fallback tick) and lease renewals.
private final class WakeReasons: Sendable {
    let counts = Mutex((looks: 0, renewals: 0))
}
