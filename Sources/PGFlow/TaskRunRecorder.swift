import Foundation
import PGFlowClient
import PGFlowPostgres
import Synchronization

/// A task run being recorded: its spec, and its id once PostgreSQL created it.
final class TaskRunRecord: Sendable {
    let spec: TaskRunSpec
    private let storedID = Mutex<UUID?>(nil)

    init(spec: TaskRunSpec) { self.spec = spec }

    /// The task run's id (nil until the recorder has created it).
    var id: UUID? {
        get { storedID.withLock { $0 } }
        set { storedID.withLock { $0 = newValue } }
    }
}

/// Writes one flow run's task runs, task states and logs to PostgreSQL in group commits.
///
/// Everything recorded while a write is in flight goes in the next one, in one transaction: the new
/// task runs (`pgflow.record_task_runs`, one statement), then the transitions it did not take along
/// (`pgflow.set_task_run_states`, one round per transition of a run in the batch, so Running precedes
/// Completed, each stamped with the time it happened, not the time it was written), then the log lines
/// (`pgflow.write_logs`, tagged with the ids just created). A task run created in the batch takes its
/// Running and Completed along when nobody waits for their decision, so a plain task that ran between
/// two commits is one row written once in its final state (with its three history rows and its result),
/// not an INSERT and two UPDATEs. Callers that need PostgreSQL's decision (start a cached or limited
/// task, fail with retries left) wait for their batch, which also writes everything queued before
/// them; the others don't, so a flow of many small tasks pays one transaction per batch, not three per
/// task. The flow run's own final state is written only after `flushed()`. Transition ids make a batch
/// retried after a lost connection idempotent.
///
/// What a crash of the flow process leaves behind: what the last commits wrote, nothing of what was
/// still queued (at most the backpressure limit, 20,000 records). A task run is recorded Completed only
/// after its body returned (the Completed record is queued then), so nothing is Completed that did not
/// complete; a task that had finished but was not yet written is absent, or left Pending or Running,
/// as an unfinished one would be (an agent's reaper then ends the flow run Crashed). Folding states into
/// the creation changes one thing here: a task run that starts and ends between two commits is never
/// seen Running, and after a crash it is either there Completed or not there at all.
final class TaskRunRecorder: Sendable {
    struct Transition: Sendable {
        let record: TaskRunRecord
        let type: StateType
        let name: String?
        let message: String?
        let resultJSON: String?
        /// False when a retry condition refused the failure: it is written Failed even with retries left.
        var allowRetry = true
        let transitionID = UUID.transitionID()
        /// When the transition happened (the state's time in PostgreSQL).
        let at = Date()
    }

    struct Log: Sendable {
        let flowRunID: UUID
        let record: TaskRunRecord?
        let level: Int
        let name: String
        let message: String
        let timestamp: Date
    }

    private enum Op: Sendable {
        case create(TaskRunRecord)
        case transition(Transition, CheckedContinuation<TransitionOutcome, any Error>?)
        case log(Log)
    }

    private struct State {
        var ops: [Op] = []
        var appended = 0
        var written = 0
        var finished = false
        var wakeUp: CheckedContinuation<Void, Never>?
        var flushWaiters: [(Int, CheckedContinuation<Void, Never>)] = []
        var failure: (any Error)?
    }

    private let pool: PostgresPool
    private let state = Mutex(State())

    init(pool: PostgresPool) { self.pool = pool }

    // MARK: Recording

    /// Queues the creation of a task run (Pending at its spec's time).
    func create(_ record: TaskRunRecord) { enqueue(.create(record)) }

    /// Queues a transition without waiting for it.
    func propose(_ transition: Transition) { enqueue(.transition(transition, nil)) }

    /// Queues a transition and waits for PostgreSQL's decision.
    func decide(_ transition: Transition) async throws -> TransitionOutcome {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.transition(transition, continuation))
        }
    }

    /// Queues a log line.
    func log(_ line: Log) { enqueue(.log(line)) }

    private func enqueue(_ op: Op) {
        let wake = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.ops.append(op)
            s.appended += 1
            defer { s.wakeUp = nil }
            return s.wakeUp
        }
        wake?.resume()
    }

    /// Waits until everything queued before the call is written; throws the first write failure.
    func flushed() async throws {
        await waitUntilWritten(state.withLock { $0.appended })
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    /// Waits while more than `limit` records are queued but not yet written, so a flow that runs far
    /// ahead of the database does not queue without bound.
    func backpressure(limit: Int = 20_000) async {
        let target = state.withLock { s -> Int? in s.appended - s.written > limit ? s.appended - limit / 2 : nil }
        if let target { await waitUntilWritten(target) }
    }

    private func waitUntilWritten(_ target: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (done, wake) = state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?) in
                if s.written >= target { return (true, nil) }
                s.flushWaiters.append((target, continuation))
                defer { s.wakeUp = nil }
                return (false, s.wakeUp)
            }
            wake?.resume()
            if done { continuation.resume() }
        }
    }

    // MARK: Writing

    /// Writes batches until `finish()`, then what is left. Ignores task cancellation on purpose: a
    /// cancelled flow's final task states must still be written.
    func run() async {
        while true {
            await drain()
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    if !s.ops.isEmpty || s.finished { return true }
                    s.wakeUp = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
            if state.withLock({ $0.finished && $0.ops.isEmpty }) { break }
        }
        await drain()
    }

    /// Lets `run` end once everything queued is written.
    func finish() {
        let wake = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.finished = true
            defer { s.wakeUp = nil }
            return s.wakeUp
        }
        wake?.resume()
    }

    private func drain() async {
        while true {
            let ops = state.withLock { s -> [Op] in
                defer { s.ops.removeAll(keepingCapacity: true) }
                return s.ops
            }
            if ops.isEmpty { return }
            await write(ops)
            let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.written += ops.count
                let done = s.flushWaiters.filter { $0.0 <= s.written }.map(\.1)
                s.flushWaiters.removeAll { $0.0 <= s.written }
                return done
            }
            ready.forEach { $0.resume() }
        }
    }

    /// Writes a batch in one transaction, retrying lost connections; a batch PostgreSQL refuses is
    /// split until the refused part is alone, so one bad task run fails only its own callers.
    private func write(_ ops: [Op]) async {
        var attempt = 0
        // One id for the batch's log lines on every try: a try whose commit reply was lost did write
        // them, and write_logs skips a batch id it has seen (task runs and transitions are idempotent by
        // their key and transition ids).
        let logBatch = UUID()
        let fresh = ops.compactMap { op -> TaskRunRecord? in
            if case .create(let record) = op, record.id == nil { return record }
            return nil
        }
        while true {
            do {
                let answers = try await pool.withConnection { c in try c.withTransaction { try Self.apply(ops, logBatch: logBatch, on: $0) } }
                for (continuation, outcome) in answers { continuation.resume(returning: outcome) }
                return
            } catch let error as PostgresError where error.isConnectionFailure && attempt < 5 {
                for record in fresh { record.id = nil }  // rolled back, or committed: the retry finds them by key
                attempt += 1
                try? await Task.sleep(for: .milliseconds(100 * attempt))
            } catch {
                for record in fresh { record.id = nil }
                if ops.count > 1 {
                    let half = ops.count / 2
                    await write(Array(ops[..<half]))
                    await write(Array(ops[half...]))
                    return
                }
                fail(ops, error)
                return
            }
        }
    }

    private func fail(_ ops: [Op], _ error: any Error) {
        state.withLock { s in if s.failure == nil { s.failure = error } }
        for case .transition(_, let continuation?) in ops { continuation.resume(throwing: error) }
    }

    /// The statements of one batch, on one connection inside a transaction. Returns the decisions to
    /// hand to waiting callers once the transaction committed.
    ///
    /// A task run created in this batch takes its Running and Completed transitions along when they are
    /// in the batch too and nobody waits for their decision (the fast path of `FlowTask.run`): one
    /// `pgflow.record_task_runs` row writes it in its final state with its history and result. Every
    /// other transition is applied afterwards by `pgflow.set_task_run_states`, in the order proposed.
    private static func apply(_ ops: [Op], logBatch: UUID, on c: PostgresConnection) throws
        -> [(CheckedContinuation<TransitionOutcome, any Error>, TransitionOutcome)]
    {
        var creates: [TaskRunRecording] = []
        var createdRecords: [TaskRunRecord] = []
        /// Per record created in this batch: its index in `creates`, or nil once a transition of it
        /// went to the general path (later ones must follow it there, in order).
        var foldable: [ObjectIdentifier: Int?] = [:]
        var rounds: [[(Transition, CheckedContinuation<TransitionOutcome, any Error>?)]] = []
        var roundOf: [ObjectIdentifier: Int] = [:]
        var logs: [Log] = []
        for op in ops {
            switch op {
            case .create(let record):
                let key = ObjectIdentifier(record)
                if record.id == nil && foldable[key] == nil {
                    foldable[key] = creates.count
                    creates.append(TaskRunRecording(spec: record.spec))
                    createdRecords.append(record)
                }
            case .transition(let t, let continuation):
                let key = ObjectIdentifier(t.record)
                if continuation == nil, t.name == nil, t.message == nil, let slot = foldable[key], let i = slot {
                    if t.type == .running && creates[i].startedAt == nil {
                        creates[i].startedAt = t.at
                        creates[i].startTransitionID = t.transitionID
                        continue
                    }
                    if t.type == .completed && creates[i].startedAt != nil && creates[i].completedAt == nil {
                        creates[i].completedAt = t.at
                        creates[i].resultJSON = t.resultJSON
                        creates[i].completeTransitionID = t.transitionID
                        continue
                    }
                }
                if foldable[key] != nil { foldable[key] = .some(nil) }
                let round = roundOf[key, default: 0]
                roundOf[key] = round + 1
                if rounds.count <= round { rounds.append([]) }
                rounds[round].append((t, continuation))
            case .log(let line):
                logs.append(line)
            }
        }
        let ids = creates.isEmpty ? [] : try PGFlowClient.recordTaskRuns(creates, on: c)
        for (record, id) in zip(createdRecords, ids) { record.id = id }
        var answers: [(CheckedContinuation<TransitionOutcome, any Error>, TransitionOutcome)] = []
        for round in rounds {
            // one call per retry permission (almost always one: refused retries are rare)
            for allowRetry in [true, false] {
                let part = round.filter { $0.0.allowRetry == allowRetry }
                if part.isEmpty { continue }
                let proposals = try part.map { t, _ -> StateProposal in
                    guard let id = t.record.id else {
                        throw FlowRunError.rejected("task run \(t.record.spec.name) was never created")
                    }
                    return StateProposal(runID: id, type: t.type, name: t.name, message: t.message, resultJSON: t.resultJSON,
                                         transitionID: t.transitionID)
                }
                let outcomes = try PGFlowClient.setTaskRunStates(proposals, timestamps: part.map(\.0.at), allowRetry: allowRetry, on: c)
                for ((_, continuation), outcome) in zip(part, outcomes) {
                    if let continuation { answers.append((continuation, outcome)) }
                }
            }
        }
        if !logs.isEmpty {
            try PGFlowClient.writeLogs(logs.map {
                LogLine(flowRunID: $0.flowRunID, taskRunID: $0.record?.id, level: $0.level, name: $0.name,
                        message: $0.message, timestamp: $0.timestamp)
            }, batchID: logBatch, on: c)
        }
        return answers
    }
}
