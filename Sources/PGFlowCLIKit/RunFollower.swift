// RunFollower: follows a flow run until it ends, through LISTEN/NOTIFY. The engine NOTIFYs
// `pgflow_flow_run_states` on every state and `pgflow_logs` on every log batch (0004); on each wake-up
// the follower reads the run's states and log lines after the last ids it saw, so every state the run
// passed through is reported once and in order (Scheduled, Pending, Running, Completed even for a run
// faster than any poll). A wake-up every few seconds covers a lost connection; nothing spins.
import Foundation
import PGFlowClient
import PGFlowPostgres

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
        let channels = logs ? ["pgflow_flow_run_states", "pgflow_logs"] : ["pgflow_flow_run_states"]
        let listener = Task { [configuration] in
            for await _ in PostgresListener.listen(configuration: configuration, channels: channels) { wake.yield() }
        }
        let ticker = Task { [fallbackInterval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int(fallbackInterval * 1000)))
                wake.yield()
            }
        }
        defer {
            listener.cancel()
            ticker.cancel()
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
        if let done = try look() { return done }
        for await _ in wakes {
            if let done = try look() {
                if logs { _ = try look() }  // lines written with the final state's transaction or just before
                return done
            }
        }
        throw CancellationError()
    }
}
