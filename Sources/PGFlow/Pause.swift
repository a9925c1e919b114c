import Foundation
import PGFlowClient
import PGFlowPostgres

/// Pauses the current flow run until it is resumed (`SELECT pgflow.resume_flow_run(id)`, or the CLI)
/// or `timeout` passes, when the run fails as TimedOut and this throws `FlowRunError.pauseTimedOut`.
/// The run is PAUSED (Paused) meanwhile and keeps its concurrency slots; the process waits.
public func pause(timeout: Duration = .seconds(3600), message: String? = nil) async throws {
    guard let scope = FlowRunScope.current else {
        throw FlowRunError.unsupported("pause(timeout:) works only inside a flow run")
    }
    let engine = scope.engine
    let id = scope.flowRunID
    try await scope.recorder.flushed()
    let expires = Date().addingTimeInterval(timeout.seconds)
    let paused = try await engine.pool.withConnection { c in
        try PGFlowClient.setFlowRunState(StateProposal(runID: id, type: .paused, message: message ?? "waiting to be resumed",
                                                       transitionID: UUID()),
                                         pauseExpiresAt: expires, on: c)
    }
    guard paused.status == .accepted else {
        throw FlowRunError.rejected(paused.reason ?? "flow run \(id) could not pause")
    }
    // Wake on pgflow_resume notifications; poll as well (correctness never depends on NOTIFY).
    let wake = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    let listener = Task {
        for await event in PostgresListener.listen(configuration: engine.pool.configuration, channels: ["pgflow_resume"]) {
            if case .notification(_, let payload, _) = event, payload == id.uuidString.lowercased() { wake.continuation.yield() }
        }
    }
    let ticker = Task {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            wake.continuation.yield()
        }
    }
    defer {
        listener.cancel()
        ticker.cancel()
    }
    for await _ in wake.stream {
        guard let summary = try await engine.pool.withConnection({ try PGFlowClient.flowRunSummary(id, on: $0) }) else { break }
        let (type, name) = (summary.stateType, summary.stateName)
        if type == .running { return }
        if type != .paused {
            if name == "TimedOut" { throw FlowRunError.pauseTimedOut(flowRunID: id, seconds: timeout.seconds) }
            throw FlowRunError.rejected("flow run \(id) left its pause as \(name)")
        }
        if Date() >= expires {
            // proposing to go on past the timeout: PostgreSQL fails the run as TimedOut
            let outcome = try await engine.pool.withConnection { c in
                try PGFlowClient.setFlowRunState(StateProposal(runID: id, type: .running, transitionID: UUID()), on: c)
            }
            if outcome.stateType == .running { return }
            throw FlowRunError.pauseTimedOut(flowRunID: id, seconds: timeout.seconds)
        }
    }
    try Task.checkCancellation()
}
