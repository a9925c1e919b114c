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

    private let client: PGFlowClient
    private let agentID: UUID
    private let pending = Mutex<[Pending]>([])
    private let signal = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

    init(client: PGFlowClient, agentID: UUID) {
        self.client = client
        self.agentID = agentID
    }

    /// Proposes a state and waits for the outcome.
    func propose(_ proposal: StateProposal) async throws -> TransitionResult {
        var p = proposal
        if p.transitionID == nil { p.transitionID = UUID() }
        return try await withCheckedThrowingContinuation { continuation in
            pending.withLock { $0.append(Pending(proposal: p, continuation: continuation)) }
            signal.continuation.yield()
        }
    }

    /// Writes batches until the task is cancelled, then writes what is left.
    func run() async {
        for await _ in signal.stream {
            await flush()
            if Task.isCancelled { break }
        }
        await flush()
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
                    let results = try await client.setFlowRunStates(batch.map(\.proposal), agentID: agentID)
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

/// Collects log lines from any thread and writes them with `pgflow.write_logs`, many per statement.
final class LogBatcher: Sendable {
    private struct State {
        var lines: [LogLine] = []
        var written = 0
        var appended = 0
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
    }

    private let pool: PostgresPool
    private let state = Mutex(State())
    private let signal = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

    init(pool: PostgresPool) { self.pool = pool }

    /// Queues a line (never blocks; callable from the output-reading threads).
    func append(_ line: LogLine) {
        state.withLock {
            $0.lines.append(line)
            $0.appended += 1
        }
        signal.continuation.yield()
    }

    /// Waits until every line appended before this call is written (or dropped after repeated failures).
    func flushed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.written >= s.appended { return true }
                s.waiters.append((s.appended, continuation))
                return false
            }
            if done { continuation.resume() } else { signal.continuation.yield() }
        }
    }

    /// Writes batches until `finish()`, then writes what is left.
    func run() async {
        for await _ in signal.stream { await write() }
        await write()
    }

    /// Stops `run` after the lines queued so far are written.
    func finish() { signal.continuation.finish() }

    private func write() async {
        while true {
            let batch = state.withLock { s -> [LogLine] in
                let b = Array(s.lines.prefix(5_000))
                s.lines.removeFirst(b.count)
                return b
            }
            if batch.isEmpty { return }
            for attempt in 0..<3 {
                do {
                    try await pool.withConnection { try PGFlowClient.writeLogs(batch, on: $0) }
                    break
                } catch {
                    if attempt == 2 { FileHandle.standardError.write(Data("pgflow-agent: dropped \(batch.count) log lines: \(error)\n".utf8)) }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.written += batch.count
                let (done, waiting) = (s.waiters.filter { $0.0 <= s.written }, s.waiters.filter { $0.0 > s.written })
                s.waiters = waiting
                return done.map(\.1)
            }
            ready.forEach { $0.resume() }
        }
    }
}
