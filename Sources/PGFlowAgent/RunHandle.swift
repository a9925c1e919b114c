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
    /// Removes an ended run's handle, unless a later attempt of the run holds its id by now; `forget` when
    /// the database has its last state or no process ran it.
    func remove(_ handle: RunHandle, forget: Bool) {
        let id = handle.run.id
        let current = runs.withLock { r -> Bool in
            guard r[id] === handle else { return false }
            r.removeValue(forKey: id)
            return true
        }
        if forget && current { _ = remembered.withLock { $0.remove(id) } }
    }
    /// Whether `run`, claimed or pushed, may start: no handle holds its id, or the one that does is an
    /// earlier attempt whose outcome is known (its process has ended; its final state, which let the
    /// database retry the run, is being written and its handle is about to go). An earlier attempt still
    /// executing does not admit it: that run waits for reconciliation to give it back.
    func admits(_ run: ClaimedFlowRun) -> Bool {
        runs.withLock { r in
            guard let earlier = r[run.id] else { return true }
            return earlier.isSettled && earlier.run.runCount < run.runCount
        }
    }
    subscript(id: UUID) -> RunHandle? { runs.withLock { $0[id] } }
    /// Whether a process of this run may have been started by this agent (see `remembered`). A run the
    /// database gives this agent that it does not remember came from a claim whose reply was lost
    /// (provided no claim older than that was in flight: see `oldestClaimInFlight`).
    func mayHaveRun(_ id: UUID) -> Bool { remembered.withLock { $0.contains(id) } }

    /// When each claim in flight was sent (by a claim number): a claim whose reply is not yet read may
    /// hold runs that are not in `runs` yet.
    private let claimsInFlight = Mutex<(next: Int, sent: [Int: ContinuousClock.Instant])>((0, [:]))
    /// Runs `claim` as one claim; its runs must be inserted before it returns.
    func claiming<T>(_ claim: () async throws -> T) async rethrows -> T {
        let number = claimsInFlight.withLock { c -> Int in
            c.next += 1
            c.sent[c.next] = .now
            return c.next
        }
        defer { _ = claimsInFlight.withLock { $0.sent.removeValue(forKey: number) } }
        return try await claim()
    }
    /// When the oldest claim still in flight was sent, if any.
    var oldestClaimInFlight: ContinuousClock.Instant? { claimsInFlight.withLock { $0.sent.values.min() } }
}
