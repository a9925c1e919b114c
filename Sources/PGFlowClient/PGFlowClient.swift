import Foundation
import PGFlowPostgres

/// Typed calls of pgflow's SQL API: one Swift function per SQL function or view, every value a bound
/// parameter, all of one shape: `static func x(…, on c: PostgresConnection) throws`.
///
/// One shape, synchronous, because libpq is blocking and a connection lives on a thread of its own: async
/// code borrows one with `pool.withConnection { c in try PGFlowClient.x(…, on: c) }` (several calls in one
/// closure share one thread hop; `c.withTransaction` makes them atomic), while the CLI, tests and
/// transactions call the same functions directly. State changes go only through these SQL functions.
public enum PGFlowClient {
    // MARK: Agents

    /// `pgflow.register_agent`: a new agent id.
    public static func registerAgent(name: String, queues: [String], on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.register_agent($1, $2)", [name, queues]).scalar(UUID.self)
    }

    /// `pgflow.claim_flow_runs`: up to `max` due runs of `queues`, moved to Pending (or Running with `start`).
    public static func claimFlowRuns(agentID: UUID, queues: [String], max: Int, start: Bool = false, on c: PostgresConnection) throws -> [ClaimedFlowRun] {
        try ClaimedFlowRun.rows(of: c.query("SELECT * FROM pgflow.claim_flow_runs($1, $2, $3, $4)", [agentID, queues, max, start]))
    }

    /// `pgflow.claim_and_offer`: the runs pushed to the agent that `seen` does not name (their notification
    /// was lost), then up to `max` less those claimed and started; when `offerFor` is set and the claim
    /// came back short, the rest is offered for pushes (valid while the agent heartbeated within `offerFor`
    /// seconds and its listener holds `agentListening`'s lock).
    public static func claimAndOffer(
        agentID: UUID, queues: [String], max: Int, seen: [UUID], offerFor: Double?, on c: PostgresConnection
    ) throws -> [ClaimedFlowRun] {
        try ClaimedFlowRun.rows(of: c.query("SELECT * FROM pgflow.claim_and_offer($1, $2, $3, $4::uuid[], make_interval(secs => $5))",
                                            [agentID, queues, max, PostgresTextArray(seen.map { $0.postgresText! }), offerFor]))
    }

    /// `pgflow.withdraw_offer`: revokes the agent's offer; returns the runs pushed under it that `seen`
    /// does not name and that are still the agent's and Running (to give back).
    public static func withdrawOffer(agentID: UUID, seen: [UUID], on c: PostgresConnection) throws -> [UUID] {
        try c.query("SELECT * FROM pgflow.withdraw_offer($1, $2::uuid[])", [agentID, PostgresTextArray(seen.map { $0.postgresText! })])
            .rows.map { try $0.decode(UUID.self, at: 0) }
    }

    /// `pgflow.agent_listening`: called on the agent's LISTEN connection; the session holds the agent's
    /// listener lock until it ends (pushes go only to an agent whose listener holds it).
    @discardableResult
    public static func agentListening(agentID: UUID, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT pgflow.agent_listening($1)", [agentID]).scalar(Bool.self)
    }

    /// The channel `pgflow.run_deployment` NOTIFYs with a run it pushed to this agent.
    public static func agentChannel(_ agentID: UUID) -> String { "pgflow_agent_" + agentID.uuidString.lowercased() }

    /// `pgflow.heartbeat` with the database's clock: its runs that are Cancelling, and `now()` (seconds
    /// since 1970) as of the heartbeat.
    public static func heartbeatWithTime(agentID: UUID, on c: PostgresConnection) throws -> (cancelling: [UUID], now: Double) {
        let row = try c.query("SELECT extract(epoch FROM now())::float8, ARRAY(SELECT pgflow.heartbeat($1))::text[]", [agentID]).rows[0]
        return (try row.decode([String].self, at: 1).compactMap(UUID.init(uuidString:)), try row.decode(Double.self, at: 0))
    }

    /// `pgflow.heartbeat`: refreshes the agent; returns its runs that are Cancelling.
    public static func heartbeat(agentID: UUID, on c: PostgresConnection) throws -> [UUID] {
        try c.query("SELECT pgflow.heartbeat($1)", [agentID]).rows.map { try $0.decode(UUID.self, at: 0) }
    }

    /// The agent's Pending and Running runs whose state is older than `seconds` (a read, for the agent's
    /// reconciliation: a claim or start whose reply was lost to a broken connection leaves such runs).
    public static func agentRuns(agentID: UUID, unchangedFor seconds: Double, on c: PostgresConnection) throws -> [(id: UUID, type: StateType)] {
        try c.query("SELECT * FROM pgflow.agent_unchanged_runs($1, make_interval(secs => $2))", [agentID, seconds])
            .rows.map { (try $0.decode(UUID.self, at: 0), StateType(rawValue: try $0.decode(String.self, at: 1)) ?? .running) }
    }

    /// `pgflow.agent_held_runs`: the runs the database gives the agent now, its Pending, Running, Paused and
    /// Cancelling runs (from `pgflow.active_runs`, by the agent's index: not a walk of the history).
    public static func agentHeldRuns(agentID: UUID, on c: PostgresConnection) throws -> [UUID] {
        try c.query("SELECT pgflow.agent_held_runs($1)", [agentID]).rows.map { try $0.decode(UUID.self, at: 0) }
    }

    /// `pgflow.deregister_agent`: the agent goes offline; its Pending runs go back to the queue and the
    /// runs it still runs crash (retried per policy). Returns how many runs changed.
    @discardableResult
    public static func deregisterAgent(_ agentID: UUID, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.deregister_agent($1)", [agentID]).scalar(Int.self)
    }

    // MARK: States and logs

    /// `pgflow.set_flow_run_states`: many transitions in one call; one result per proposal, in order.
    public static func setFlowRunStates(_ proposals: [StateProposal], agentID: UUID?, on c: PostgresConnection) throws -> [TransitionResult] {
        if proposals.isEmpty { return [] }
        let results: [String?] = proposals.map(\.resultJSON)
        return try TransitionResult.rows(of: c.query(
            "SELECT * FROM pgflow.set_flow_run_states($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::uuid[], $7)",
            [
                proposals.map { $0.runID.postgresText! }, proposals.map(\.type.rawValue),  // (postgresText: uuidString formats with snprintf)
                nullableArray(proposals.map(\.name)), nullableArray(proposals.map(\.message)),
                nullableArray(results), nullableArray(proposals.map { $0.transitionID?.postgresText }), agentID,
            ]
        ))
    }

    /// `pgflow.write_logs`: many lines in one statement. With `batchID`, sending the same batch again
    /// (after a lost commit reply) writes nothing: pass the same id on every retry of one batch.
    public static func writeLogs(_ lines: [LogLine], batchID: UUID? = nil, on c: PostgresConnection) throws {
        if lines.isEmpty { return }
        try c.query(
            "SELECT pgflow.write_logs($1::uuid[], $2::int[], $3::text[], $4::text[], $5::uuid[], $6::timestamptz[], p_batch_id => $7::uuid)",
            [
                lines.map { $0.flowRunID.postgresText! }, lines.map { String($0.level) }, lines.map { sanitize($0.message) },
                lines.map(\.name), nullableArray(lines.map { $0.taskRunID?.postgresText }), PostgresTextArray(lines.map { $0.timestamp.postgresText }),
                batchID?.uuidString,
            ])
    }

    /// PostgreSQL text cannot hold NUL bytes; a program's output can.
    static func sanitize(_ s: String) -> String { s.contains("\u{0}") ? s.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : s }
}

/// NULL when every element is nil (the SQL functions treat a NULL array as "all defaults").
func nullableArray(_ elements: [String?]) -> PostgresTextArray? {
    elements.allSatisfy { $0 == nil } ? nil : PostgresTextArray(elements)
}
