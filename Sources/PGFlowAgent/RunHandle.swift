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
    /// Runs this agent claimed that may have had a process and whose last state it has not written:
    /// executing ones, and ended ones whose final write failed or that were abandoned.
    private let remembered = Mutex<Set<UUID>>([])

    var count: Int { runs.withLock { $0.count } }
    var all: [RunHandle] { runs.withLock { Array($0.values) } }

    func insert(_ handle: RunHandle) {
        runs.withLock { $0[handle.run.id] = handle }
        _ = remembered.withLock { $0.insert(handle.run.id) }
    }
    /// Removes an ended run; `forget` when the database has its last state or no process ran it.
    func remove(_ id: UUID, forget: Bool) {
        _ = runs.withLock { $0.removeValue(forKey: id) }
        if forget { _ = remembered.withLock { $0.remove(id) } }
    }
    subscript(id: UUID) -> RunHandle? { runs.withLock { $0[id] } }
    /// Whether a process of this run may have been started by this agent (see `remembered`). A run the
    /// database gives this agent that it does not remember came from a claim whose reply was lost
    /// (provided no claim was in flight meanwhile: see `claims`).
    func mayHaveRun(_ id: UUID) -> Bool { remembered.withLock { $0.contains(id) } }

    /// Claims sent and not yet settled (their runs inserted, or their failure seen), and claims settled.
    private let claimCounts = Mutex<(inFlight: Int, settled: Int)>((0, 0))
    /// Runs `claim` as one claim: a reconcile pass that overlaps it cannot tell its runs from lost ones.
    func claiming<T>(_ claim: () async throws -> T) async rethrows -> T {
        claimCounts.withLock { $0.inFlight += 1 }
        defer { claimCounts.withLock { $0.inFlight -= 1; $0.settled += 1 } }
        return try await claim()
    }
    /// The claim counts, to compare before and after reading what the database gives this agent.
    var claims: (inFlight: Int, settled: Int) { claimCounts.withLock { $0 } }
}
