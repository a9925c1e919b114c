import Foundation
import PGFlowClient
import Synchronization

/// Why a running execution is being stopped.
enum StopReason: Sendable {
    /// The run was cancelled: it ends Cancelled.
    case cancelled
    /// The agent is shutting down: no state is proposed (deregistering gives it back or crashes it).
    case shutdown
    /// The run is no longer this agent's (the reaper ended it, another agent may run it now), or the
    /// agent lost the database past the fence timeout: its processes stop and no state is proposed.
    case fenced
}

/// A run in progress: lets the agent stop it (cancel, shutdown, fence) and beat its supervisor.
final class RunHandle: Sendable {
    let run: ClaimedFlowRun
    /// When the agent took it (after its claim committed).
    let claimedAt: ContinuousClock.Instant
    private let state = Mutex<(child: ChildProcess?, stop: StopReason?, task: Task<ExecutionOutcome, Never>?, settled: Bool)>(
        (nil, nil, nil, false))

    init(run: ClaimedFlowRun) {
        self.run = run
        self.claimedAt = .now
    }

    var stopReason: StopReason? { state.withLock { $0.stop } }

    /// True once its outcome is known and its final state is being written (no longer fenced then).
    var isSettled: Bool { state.withLock { $0.settled } }

    /// Marks the outcome known.
    func settle() { state.withLock { $0.settled = true } }

    /// True when it runs an in-process flow (no supervisor to fence it).
    var isInProcess: Bool { state.withLock { $0.task != nil } }

    func attach(_ child: ChildProcess) -> StopReason? {
        state.withLock { s in
            s.child = child
            return s.stop
        }
    }

    func attach(_ task: Task<ExecutionOutcome, Never>) {
        let stop = state.withLock { s -> StopReason? in
            s.task = task
            return s.stop
        }
        if stop != nil { task.cancel() }
    }

    /// Sends its supervisor a liveness beat.
    func beat() { state.withLock { $0.child }?.beat() }

    /// Stops the run: SIGTERM then SIGKILL to a command's process group, task cancellation for a Swift flow.
    func stop(_ reason: StopReason, grace: Duration) async {
        let (child, task, first) = state.withLock { s -> (ChildProcess?, Task<ExecutionOutcome, Never>?, Bool) in
            let first = s.stop == nil
            if first { s.stop = reason }
            return (s.child, s.task, first)
        }
        guard first else { return }
        task?.cancel()
        if let child { _ = await child.terminate(grace: grace) }
    }
}

/// The runs an agent executes now, by id.
final class RunningRuns: Sendable {
    private let runs = Mutex<[UUID: RunHandle]>([:])

    var count: Int { runs.withLock { $0.count } }
    var all: [RunHandle] { runs.withLock { Array($0.values) } }

    func insert(_ handle: RunHandle) { runs.withLock { $0[handle.run.id] = handle } }
    func remove(_ id: UUID) { _ = runs.withLock { $0.removeValue(forKey: id) } }
    subscript(id: UUID) -> RunHandle? { runs.withLock { $0[id] } }
}
