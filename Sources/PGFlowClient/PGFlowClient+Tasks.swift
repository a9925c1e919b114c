// The SQL calls the Swift SDK (PGFlow) makes: ad-hoc flow runs, task runs, their transitions, results,
// named concurrency leases and resuming paused runs. One Swift function per SQL function; the
// connection-taking ones run on the caller's (pool) thread so the SDK can put several in one transaction.
import Foundation
import PGFlowPostgres

/// A retry policy as the SQL functions store it (`retries`, `retry_backoff`, `retry_delays`, `retry_jitter`).
public struct SQLRetryPolicy: Sendable, Equatable {
    /// How many times a failed run runs again.
    public var retries: Int
    /// `fixed`, `list` or `exponential`.
    public var backoff: String
    /// Seconds: one for fixed and exponential, one per retry for list (the last repeats).
    public var delays: [Double]
    /// Each delay grows by up to this factor at random (0.2 = up to 20 %).
    public var jitter: Double

    /// No retries.
    public static let none = SQLRetryPolicy(retries: 0, backoff: "fixed", delays: [0], jitter: 0)

    /// Creates a policy.
    public init(retries: Int, backoff: String, delays: [Double], jitter: Double) {
        self.retries = retries
        self.backoff = backoff
        self.delays = delays
        self.jitter = jitter
    }

    /// The `float8[]` literal of the delays.
    var delaysLiteral: String { "{" + delays.map { "\($0)" }.joined(separator: ",") + "}" }
}

/// What a transition did, with everything the SDK needs to act on it (`pgflow.transition_result`).
public struct TransitionOutcome: Sendable, Equatable {
    /// The run.
    public let runID: UUID
    /// What happened.
    public let status: TransitionResult.Status
    /// Why, for anything but ACCEPTED.
    public let reason: String?
    /// The run's state type after the call.
    public let stateType: StateType
    /// The run's state name after the call.
    public let stateName: String
    /// When the run entered its current state (the database's clock).
    public let stateTimestamp: Date
    /// When a SCHEDULED run is due (an AwaitingRetry run: when to retry).
    public let nextScheduledStart: Date?
    /// How many times the run has started.
    public let runCount: Int
    /// The result the transition carried (a Cached redirect: the cached value), as JSON text.
    public let resultJSON: String?

    init(row: PostgresRow) throws {
        runID = try row.decode(UUID.self, "run_id")
        guard let status = TransitionResult.Status(rawValue: try row.decode(String.self, "status")),
              let type = StateType(rawValue: try row.decode(String.self, "state_type")) else {
            throw PostgresError(kind: .decoding, message: "unexpected transition result \(row.values)")
        }
        self.status = status
        reason = try row.decode(String?.self, "reason")
        stateType = type
        stateName = try row.decode(String.self, "state_name")
        stateTimestamp = try row.decode(Date.self, "state_timestamp")
        nextScheduledStart = try row.decode(Date?.self, "next_scheduled_start")
        runCount = try row.decode(Int?.self, "run_count") ?? 0
        resultJSON = try row.decode(String?.self, "result")
    }
}

/// A task run to create (`pgflow.create_task_runs`).
public struct TaskRunSpec: Sendable {
    /// The flow run it belongs to.
    public var flowRunID: UUID
    /// The task's stable key.
    public var taskKey: String
    /// Which call of the task within the flow run.
    public var dynamicKey: String
    /// The run's display name.
    public var name: String
    /// The inputs as JSON text.
    public var inputsJSON: String
    /// Tags (tag concurrency limits apply).
    public var tags: [String]
    /// The cache key, if the task caches.
    public var cacheKey: String?
    /// Seconds a cache entry stays valid (nil: forever).
    public var cacheExpiration: Double?
    /// Run even when the cache has a valid entry, and replace the entry with the result.
    public var cacheRefresh: Bool
    /// The retry policy.
    public var retry: SQLRetryPolicy
    /// When it was created (the Pending state's time).
    public var createdAt: Date

    /// Creates a spec.
    public init(flowRunID: UUID, taskKey: String, dynamicKey: String, name: String, inputsJSON: String, tags: [String],
                cacheKey: String?, cacheExpiration: Double?, cacheRefresh: Bool = false, retry: SQLRetryPolicy, createdAt: Date) {
        self.flowRunID = flowRunID
        self.taskKey = taskKey
        self.dynamicKey = dynamicKey
        self.name = name
        self.inputsJSON = inputsJSON
        self.tags = tags
        self.cacheKey = cacheKey
        self.cacheExpiration = cacheExpiration
        self.cacheRefresh = cacheRefresh
        self.retry = retry
        self.createdAt = createdAt
    }
}

/// A task run to record (`pgflow.record_task_runs`): its spec, and when it started and completed if it did.
public struct TaskRunRecording: Sendable {
    /// What to create.
    public var spec: TaskRunSpec
    /// When it moved to Running (nil: it stays Pending).
    public var startedAt: Date?
    /// The Running transition's id (a batch sent again comes back DUPLICATE).
    public var startTransitionID: UUID?
    /// When it completed (nil: not yet; needs `startedAt`).
    public var completedAt: Date?
    /// Its result as JSON text (nil: none).
    public var resultJSON: String?
    /// The Completed transition's id.
    public var completeTransitionID: UUID?

    /// Creates a recording of a task run that has not started.
    public init(spec: TaskRunSpec) { self.spec = spec }
}

extension PGFlowClient {
    // MARK: Flow runs

    /// `pgflow.create_flow_run`: an ad-hoc flow run (no deployment), created RUNNING (or waiting for a
    /// tag limit in AwaitingConcurrencySlot). Returns its id.
    public static func createFlowRun(
        flowName: String, parametersJSON: String, name: String?, tags: [String], parentTaskRunID: UUID?,
        retry: SQLRetryPolicy, on c: PostgresConnection
    ) throws -> UUID {
        try c.query(
            """
            SELECT pgflow.create_flow_run($1, $2::jsonb, $3, $4::text[], $5::uuid, 'RUNNING', NULL, $6, $7::float8[], $8, $9)
            """,
            [flowName, PostgresRawJSON(parametersJSON), name, tags, parentTaskRunID, retry.retries, retry.delaysLiteral,
             retry.backoff, retry.jitter]
        ).scalar(UUID.self)
    }

    /// `pgflow.set_flow_run_state` for one run, with the full outcome; `pauseExpiresAt` for PAUSED;
    /// `allowRetry` false writes a failure Failed even with retries left (a retry condition refused it).
    public static func setFlowRunState(
        _ proposal: StateProposal, pauseExpiresAt: Date? = nil, allowRetry: Bool = true, on c: PostgresConnection
    ) throws -> TransitionOutcome {
        let row = try c.query(
            """
            SELECT * FROM pgflow.set_flow_run_state($1, $2, $3, $4, $5::jsonb, p_pause_expires_at => $6,
                                                    p_transition_id => $7, p_allow_retry => $8)
            """,
            [proposal.runID, proposal.type.rawValue, proposal.name, proposal.message,
             proposal.resultJSON.map { PostgresRawJSON($0) }, pauseExpiresAt, proposal.transitionID, allowRetry]
        ).first
        guard let row else { throw PostgresError(kind: .decoding, message: "set_flow_run_state returned no row") }
        return try TransitionOutcome(row: row)
    }

    /// A flow run's name and current state (from `pgflow.flow_run_history`), or nil when it does not exist.
    public static func flowRunSummary(_ id: UUID, on c: PostgresConnection) throws -> FlowRunSummary? {
        guard let row = try c.query("SELECT name, state::text, state_name FROM pgflow.flow_run_history WHERE id = $1", [id]).first,
              let type = StateType(rawValue: try row.decode(String.self, at: 1)) else { return nil }
        return FlowRunSummary(id: id, name: try row.decode(String.self, at: 0), stateType: type, stateName: try row.decode(String.self, at: 2))
    }

    // MARK: Task runs

    /// `pgflow.create_task_runs`: one statement per flow run among the specs; the ids in order (an
    /// existing task run with the same flow run, task key and dynamic key is returned, not created again).
    public static func createTaskRuns(_ specs: [TaskRunSpec], on c: PostgresConnection) throws -> [UUID] {
        var ids = [UUID?](repeating: nil, count: specs.count)
        var positions: [UUID: [Int]] = [:]
        var flowRuns: [UUID] = []
        for (i, spec) in specs.enumerated() {
            if positions[spec.flowRunID] == nil { flowRuns.append(spec.flowRunID) }
            positions[spec.flowRunID, default: []].append(i)
        }
        for flowRunID in flowRuns {
            let batch = positions[flowRunID]!.map { specs[$0] }
            let rows = try c.query(
                """
                SELECT * FROM pgflow.create_task_runs(
                    $1, $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[],
                    (SELECT array_agg(make_interval(secs => e) ORDER BY o) FROM unnest($8::float8[]) WITH ORDINALITY u(e, o)),
                    $9::int[], $10::text[], $11::text[], $12::float8[], $13::timestamptz[], $14::boolean[])
                """,
                [
                    flowRunID, PostgresTextArray(batch.map(\.taskKey)), PostgresTextArray(batch.map(\.dynamicKey)),
                    PostgresTextArray(batch.map(\.name)), PostgresTextArray(batch.map(\.inputsJSON)),
                    PostgresTextArray(batch.map { $0.tags.postgresText }), nullableArray(batch.map(\.cacheKey)),
                    nullableArray(batch.map { $0.cacheExpiration.map { "\($0)" } }),
                    PostgresTextArray(batch.map { String($0.retry.retries) }), PostgresTextArray(batch.map(\.retry.delaysLiteral)),
                    PostgresTextArray(batch.map(\.retry.backoff)), PostgresTextArray(batch.map { "\($0.retry.jitter)" }),
                    PostgresTextArray(batch.map { $0.createdAt.postgresText }),
                    batch.contains(where: \.cacheRefresh) ? PostgresTextArray(batch.map { $0.cacheRefresh ? "t" : "f" }) : nil,
                ]
            ).rows
            guard rows.count == batch.count else {
                throw PostgresError(kind: .decoding, message: "create_task_runs returned \(rows.count) ids for \(batch.count) task runs")
            }
            for (i, row) in zip(positions[flowRunID]!, rows) { ids[i] = try row.decode(UUID.self, at: 0) }
        }
        return ids.map { $0! }
    }

    /// `pgflow.record_task_runs`: creates task runs (as `createTaskRuns`) that may already have started
    /// and ended, one statement per flow run among them; a new, untagged run that looks nothing up in
    /// the cache is written once in its final state, every other one goes through the state machine's
    /// general path. The ids in order.
    public static func recordTaskRuns(_ runs: [TaskRunRecording], on c: PostgresConnection) throws -> [UUID] {
        var ids = [UUID?](repeating: nil, count: runs.count)
        var positions: [UUID: [Int]] = [:]
        var flowRuns: [UUID] = []
        for (i, run) in runs.enumerated() {
            if positions[run.spec.flowRunID] == nil { flowRuns.append(run.spec.flowRunID) }
            positions[run.spec.flowRunID, default: []].append(i)
        }
        for flowRunID in flowRuns {
            let batch = positions[flowRunID]!.map { runs[$0] }
            let specs = batch.map(\.spec)
            let rows = try c.query(
                """
                SELECT * FROM pgflow.record_task_runs(
                    $1, $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[],
                    (SELECT array_agg(make_interval(secs => e) ORDER BY o) FROM unnest($8::float8[]) WITH ORDINALITY u(e, o)),
                    $9::int[], $10::text[], $11::text[], $12::float8[], $13::timestamptz[], $14::boolean[],
                    $15::timestamptz[], $16::uuid[], $17::timestamptz[], $18::jsonb[], $19::uuid[])
                """,
                [
                    flowRunID, PostgresTextArray(specs.map(\.taskKey)), PostgresTextArray(specs.map(\.dynamicKey)),
                    PostgresTextArray(specs.map(\.name)), PostgresTextArray(specs.map(\.inputsJSON)),
                    nullableArray(specs.map { $0.tags.isEmpty ? nil : $0.tags.postgresText }), nullableArray(specs.map(\.cacheKey)),
                    nullableArray(specs.map { $0.cacheExpiration.map { "\($0)" } }),
                    PostgresTextArray(specs.map { String($0.retry.retries) }), PostgresTextArray(specs.map(\.retry.delaysLiteral)),
                    PostgresTextArray(specs.map(\.retry.backoff)), PostgresTextArray(specs.map { "\($0.retry.jitter)" }),
                    PostgresTextArray(specs.map { $0.createdAt.postgresText }),
                    specs.contains(where: \.cacheRefresh) ? PostgresTextArray(specs.map { $0.cacheRefresh ? "t" : "f" }) : nil,
                    nullableArray(batch.map { $0.startedAt?.postgresText }), nullableArray(batch.map { $0.startTransitionID?.postgresText }),
                    nullableArray(batch.map { $0.completedAt?.postgresText }), nullableArray(batch.map(\.resultJSON)),
                    nullableArray(batch.map { $0.completeTransitionID?.postgresText }),
                ]
            ).rows
            guard rows.count == batch.count else {
                throw PostgresError(kind: .decoding, message: "record_task_runs returned \(rows.count) ids for \(batch.count) task runs")
            }
            for (i, row) in zip(positions[flowRunID]!, rows) { ids[i] = try row.decode(UUID.self, at: 0) }
        }
        return ids.map { $0! }
    }

    /// `pgflow.set_task_run_states`: one transition per task run (a run at most once per call); one
    /// outcome per proposal, in order. `timestamps`: when each transition happened (nil: the database's
    /// clock time of the statement); `allowRetry` false writes failures Failed even with retries left.
    public static func setTaskRunStates(
        _ proposals: [StateProposal], timestamps: [Date]? = nil, allowRetry: Bool = true, on c: PostgresConnection
    ) throws -> [TransitionOutcome] {
        if proposals.isEmpty { return [] }
        return try c.query(
            """
            SELECT * FROM pgflow.set_task_run_states($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::uuid[],
                                                     p_now => clock_timestamp(), p_timestamps => $7::timestamptz[],
                                                     p_allow_retry => $8)
            """,
            [
                PostgresTextArray(proposals.map { $0.runID.postgresText }), PostgresTextArray(proposals.map(\.type.rawValue)),
                nullableArray(proposals.map(\.name)), nullableArray(proposals.map(\.message)),
                nullableArray(proposals.map(\.resultJSON)), nullableArray(proposals.map { $0.transitionID?.postgresText }),
                timestamps.map { PostgresTextArray($0.map(\.postgresText)) }, allowRetry,
            ]
        ).rows.map(TransitionOutcome.init(row:))
    }

    /// The stored result of a run (`pgflow.results`), as JSON text.
    public static func result(of runID: UUID, on c: PostgresConnection) throws -> String? {
        try c.query("SELECT value FROM pgflow.results WHERE run_id = $1", [runID]).first?.decode(String.self, at: 0)
    }

    // MARK: Named concurrency limits

    /// `pgflow.acquire_concurrency_slots`: the lease id, or nil when a limit is full now.
    public static func acquireConcurrencySlots(names: [String], slots: Int, leaseSeconds: Double, holderID: UUID?, on c: PostgresConnection) throws -> UUID? {
        try c.query(
            "SELECT pgflow.acquire_concurrency_slots($1::text[], $2, make_interval(secs => $3), $4::uuid)",
            [names, slots, leaseSeconds, holderID]
        ).scalar(UUID?.self)
    }

    /// `pgflow.release_concurrency_slots`: how many limits the lease held.
    @discardableResult
    public static func releaseConcurrencySlots(_ leaseID: UUID, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.release_concurrency_slots($1)", [leaseID]).scalar(Int.self)
    }

    /// `pgflow.renew_concurrency_lease`: false if the lease is gone or expired.
    public static func renewConcurrencyLease(_ leaseID: UUID, leaseSeconds: Double, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT pgflow.renew_concurrency_lease($1, make_interval(secs => $2))", [leaseID, leaseSeconds])
            .scalar(Bool.self)
    }
}
