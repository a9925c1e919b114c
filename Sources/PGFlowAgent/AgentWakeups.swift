import Foundation
import PGFlowClient
import Synchronization

/// What wakes the agent's claim loop: a reason to claim (a queue's NOTIFY, a run finishing, the poll,
/// a reconnected listener) or runs pushed to it (their NOTIFY on the agent's own channel), which are
/// started without a claim. Many wake-ups between two turns of the loop are one turn.
final class AgentWakeups: Sendable {
    private let continuation: AsyncStream<Void>.Continuation
    /// The loop's wake-ups (iterate once).
    let stream: AsyncStream<Void>
    private let pending = Mutex<(claim: Bool, pushed: [ClaimedFlowRun])>((true, []))

    init() {
        (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The loop should claim.
    func claim() {
        pending.withLock { $0.claim = true }
        continuation.yield()
    }

    /// A run was pushed to the agent: the loop should start it.
    func pushed(_ run: ClaimedFlowRun) {
        pending.withLock { $0.pushed.append(run) }
        continuation.yield()
    }

    /// What the loop has to do now (and clears it).
    func take() -> (claim: Bool, pushed: [ClaimedFlowRun]) {
        pending.withLock { p in
            defer { p = (false, []) }
            return p
        }
    }
}

/// The runs pushed to an agent that it started: those no claim has acknowledged yet (sent as the
/// claim's `p_seen`), and the last few thousand attempts the agent started, claimed or pushed (so an
/// attempt that a claim returns and a late notification also carries starts once).
final class PushedRuns: Sendable {
    private struct Attempt: Hashable { let run: UUID; let count: Int }
    /// `order` is a ring of the remembered attempts, oldest at `next` once full (an array's removeFirst
    /// moved all 4,095 others on every start: 10 % of a draining agent's CPU, perf, 2026-12-05).
    private let state = Mutex<(unacknowledged: Set<UUID>, recent: Set<Attempt>, order: [Attempt], next: Int)>(([], [], [], 0))
    private static let remembered = 4096

    /// Records an attempt about to start (`pushed`: from its notification); false when it started
    /// before (do not start it again).
    func start(_ run: ClaimedFlowRun, pushed: Bool) -> Bool {
        let attempt = Attempt(run: run.id, count: run.runCount)
        return state.withLock { s in
            guard s.recent.insert(attempt).inserted else { return false }
            if s.order.count < Self.remembered {
                s.order.append(attempt)
            } else {
                s.recent.remove(s.order[s.next])
                s.order[s.next] = attempt
                s.next = (s.next + 1) % Self.remembered
            }
            if pushed { s.unacknowledged.insert(run.id) }
            return true
        }
    }

    /// Whether the first attempt of the run started here.
    func started(_ id: UUID) -> Bool { state.withLock { $0.recent.contains(Attempt(run: id, count: 1)) } }

    /// The runs started from their notification that no claim has acknowledged yet.
    var unacknowledged: [UUID] { state.withLock { Array($0.unacknowledged) } }

    /// A claim that named these as seen succeeded.
    func acknowledged(_ ids: [UUID]) {
        state.withLock { s in for id in ids { s.unacknowledged.remove(id) } }
    }
}
