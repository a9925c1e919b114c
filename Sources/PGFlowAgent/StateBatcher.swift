import Foundation
import PGFlowClient
import PGFlowPostgres
import Synchronization

/// Writes state transitions in batches: every proposal made while a batch is in flight goes in the
/// next one (group commit), so a lone proposal waits for nothing and a busy agent writes hundreds of
/// transitions per statement. Each proposal carries a transition id, so retrying a batch after a
/// connection error cannot apply a transition twice.
final class StateBatcher: Sendable {
    private struct Pending {
        let proposal: StateProposal
        let continuation: CheckedContinuation<TransitionResult, any Error>
    }

    private let pool: PostgresPool
    private let agentID: UUID
    private let pending = Mutex<[Pending]>([])
    /// Set once `run` has written its last batch: later proposals fail at once instead of waiting forever.
    private let closed = Mutex(false)
    private let signal = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

    init(pool: PostgresPool, agentID: UUID) {
        self.pool = pool
        self.agentID = agentID
    }

    /// Proposes a state and waits for the outcome.
    func propose(_ proposal: StateProposal) async throws -> TransitionResult {
        var p = proposal
        if p.transitionID == nil { p.transitionID = UUID.transitionID() }
        return try await withCheckedThrowingContinuation { continuation in
            let accepted = closed.withLock { isClosed -> Bool in
                if !isClosed { pending.withLock { $0.append(Pending(proposal: p, continuation: continuation)) } }
                return !isClosed
            }
            if accepted {
                signal.continuation.yield()
            } else {
                continuation.resume(throwing: AgentError.configuration("the agent is stopping: state \(p.type.rawValue) of run \(p.runID) not written"))
            }
        }
    }

    /// Writes batches until the task is cancelled, then writes what is left.
    func run() async {
        for await _ in signal.stream {
            await flush()
            if Task.isCancelled { break }
        }
        await flush()
        closed.withLock { $0 = true }
        await flush()  // what was proposed while closing
    }

    /// Stops `run` after it has written everything proposed so far.
    func finish() { signal.continuation.finish() }

    private func flush() async {
        while true {
            // One proposal per run per batch (the SQL function refuses duplicates).
            let batch = pending.withLock { all -> [Pending] in
                var seen = Set<UUID>(), taken: [Pending] = [], rest: [Pending] = []
                for p in all {
                    if seen.insert(p.proposal.runID).inserted { taken.append(p) } else { rest.append(p) }
                }
                all = rest
                return taken
            }
            if batch.isEmpty { return }
            // A lost connection (a restarting server) is retried for up to five minutes: the transition
            // ids make a batch that did commit come back as DUPLICATE instead of applying twice.
            let deadline = ContinuousClock.now + .seconds(300)
            var backoff = 50
            while true {
                do {
                    let (proposals, agentID) = (batch.map(\.proposal), self.agentID)
                    let results = try await pool.withConnection { try PGFlowClient.setFlowRunStates(proposals, agentID: agentID, on: $0) }
                    for (p, r) in zip(batch, results) { p.continuation.resume(returning: r) }
                    break
                } catch let error as PostgresError where error.isConnectionFailure && ContinuousClock.now < deadline {
                    await pause(milliseconds: backoff)
                    backoff = min(backoff * 2, 2_000)
                } catch {
                    for p in batch { p.continuation.resume(throwing: error) }
                    break
                }
            }
        }
    }
}
