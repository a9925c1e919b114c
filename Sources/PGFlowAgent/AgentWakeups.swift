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
/// claim's `p_seen`), and the last few thousand ids (so a run returned both by a claim and by a late
/// notification starts once).
final class PushedRuns: Sendable {
    private let state = Mutex<(unacknowledged: Set<UUID>, recent: Set<UUID>, order: [UUID])>(([], [], []))
    private static let remembered = 4096

    /// Records a pushed run about to start; false when it was started before (do not start it again).
    func start(_ id: UUID) -> Bool {
        state.withLock { s in
            guard s.recent.insert(id).inserted else { return false }
            s.order.append(id)
            if s.order.count > Self.remembered {
                s.recent.remove(s.order.removeFirst())
            }
            s.unacknowledged.insert(id)
            return true
        }
    }

    /// Records a run a claim returned; false when it was pushed and started here already.
    func remember(_ id: UUID) -> Bool {
        state.withLock { s in
            guard s.recent.insert(id).inserted else { return false }
            s.order.append(id)
            if s.order.count > Self.remembered {
                s.recent.remove(s.order.removeFirst())
            }
            return true
        }
    }

    /// Whether the run was pushed and started here.
    func started(_ id: UUID) -> Bool { state.withLock { $0.recent.contains(id) } }

    /// The started runs no claim has acknowledged yet.
    var unacknowledged: [UUID] { state.withLock { Array($0.unacknowledged) } }

    /// A claim that named these as seen succeeded.
    func acknowledged(_ ids: [UUID]) {
        state.withLock { s in for id in ids { s.unacknowledged.remove(id) } }
    }
}
