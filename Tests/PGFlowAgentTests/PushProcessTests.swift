// Runs pushed to idle agents (0018): an idle agent's claim offers its capacity, run_deployment inserts
// a run due now Running for it and NOTIFYs its channel, and the agent starts the run from the
// notification with no claim. These tests run real pgflow-agent processes and do the crash: a killed
// agent's offer takes no run, a frozen agent's offer lapses, and a notification with no run in it (too
// large to carry one) is made good by the agent's claim.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct PushProcessTests {
    static let pushedMessage = "pushed to an idle agent that offered to take runs of its queue"

    /// Slots the agent named `name` offers now (0: no offer).
    func offered(_ name: String, on c: PostgresConnection) throws -> Int {
        try c.query("""
            SELECT coalesce(sum(o.slots), 0)::int FROM pgflow.agent_offers o JOIN pgflow.agents a ON a.id = o.agent_id
             WHERE a.name = $1
            """, [name]).scalar(Int.self)
    }

    /// The agent's LISTEN sessions (application_name `name`, last query the listener lock).
    func listeners(_ name: String, on c: PostgresConnection) throws -> Int {
        try c.query("""
            SELECT count(*)::int FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = $1 AND query LIKE '%agent_listening%'
            """, [name]).scalar(Int.self)
    }

    func states(_ run: UUID, on c: PostgresConnection) throws -> [String] {
        try c.query("SELECT state_name FROM pgflow.flow_run_states WHERE flow_run_id = $1 ORDER BY id", [run])
            .rows.map { try $0.decode(String.self, at: 0) }
    }

    func pendingMessage(_ run: UUID, on c: PostgresConnection) throws -> String? {
        try c.query("SELECT message FROM pgflow.flow_run_states WHERE flow_run_id = $1 AND state_type = 'PENDING'", [run])
            .rows.first.map { try $0.decode(String?.self, at: 0) } ?? nil
    }

    func stateType(_ run: UUID, on c: PostgresConnection) throws -> String {
        try c.query("SELECT state_type::text FROM pgflow.flow_runs WHERE id = $1", [run]).scalar(String.self)
    }

    @Test func anIdleAgentStartsAPushedRunFromItsNotification() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('push', 'noop', 'true')")
            // the poll is an hour away and the queue gets no NOTIFY for a pushed run: only the push starts it
            let agent = try TestProcess("pgflow-agent", ["--name", "push-a", "--queue", "default", "--poll", "3600", "--limit", "4"],
                                        environment: ["PGFLOW_DATABASE_URL": db.conninfo + " application_name=push-a"])
            let offering = try await eventually(timeout: 60) { try offered("push-a", on: c) == 4 }
            #expect(offering, "the idle agent offers its limit:\n\(agent.output.suffix(2000))")
            let runID = try c.query("SELECT pgflow.run_deployment('push/noop')").scalar(UUID.self)
            #expect(try pendingMessage(runID, on: c) == Self.pushedMessage, "the run was pushed")
            #expect(try c.query("SELECT count(*)::int FROM pgflow.run_queue").scalar(Int.self) == 0)
            let completed = try await eventually(timeout: 60) { try stateType(runID, on: c) == "COMPLETED" }
            #expect(completed, "agent output:\n\(agent.output.suffix(2000))")
            #expect(try states(runID, on: c) == ["Scheduled", "Pending", "Running", "Completed"])
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func aPushTooLargeForANotificationIsStartedByTheClaimItWakes() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('push', 'noop', 'true')")
            let agent = try TestProcess("pgflow-agent", ["--name", "push-b", "--queue", "default", "--poll", "3600"],
                                        environment: ["PGFLOW_DATABASE_URL": db.conninfo + " application_name=push-b"])
            let offering = try await eventually(timeout: 60) { try offered("push-b", on: c) > 0 }
            #expect(offering, "agent output:\n\(agent.output.suffix(2000))")
            // 8,000 bytes of parameters: the notification cannot carry the run and is sent empty
            let runID = try c.query("SELECT pgflow.run_deployment('push/noop', jsonb_build_object('big', repeat('x', 8000)))")
                .scalar(UUID.self)
            #expect(try pendingMessage(runID, on: c) == Self.pushedMessage, "the run was pushed")
            let completed = try await eventually(timeout: 60) { try stateType(runID, on: c) == "COMPLETED" }
            #expect(completed, "agent output:\n\(agent.output.suffix(2000))")
            #expect(try states(runID, on: c) == ["Scheduled", "Pending", "Running", "Completed"], "one attempt")
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func aKilledAgentsOfferTakesNoRun() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('push', 'noop', 'true')")
            // a 10 s heartbeat: the offer counts for 21 s after one, so only the dead listener can stop a push
            let first = try TestProcess("pgflow-agent", ["--name", "push-killed", "--queue", "default", "--poll", "3600", "--heartbeat", "10"],
                                        environment: ["PGFLOW_DATABASE_URL": db.conninfo + " application_name=push-killed"])
            let ready = try await eventually(timeout: 60) {
                try offered("push-killed", on: c) > 0 && listeners("push-killed", on: c) == 1
            }
            #expect(ready, "agent output:\n\(first.output.suffix(2000))")
            first.signal(SIGKILL)
            _ = await first.waitForExit(timeout: 60)
            // PostgreSQL ends the dead agent's sessions when it reads their closed sockets
            let gone = try await eventually(timeout: 60) { try listeners("push-killed", on: c) == 0 }
            #expect(gone)
            #expect(try offered("push-killed", on: c) > 0, "the dead agent's offer row is still there")
            let runID = try c.query("SELECT pgflow.run_deployment('push/noop')").scalar(UUID.self)
            #expect(try stateType(runID, on: c) == "SCHEDULED", "the run was not pushed to the dead agent")
            #expect(try c.query("SELECT count(*)::int FROM pgflow.run_queue WHERE flow_run_id = $1", [runID]).scalar(Int.self) == 1)
            let second = try TestProcess("pgflow-agent", ["--name", "push-second", "--queue", "default", "--poll", "3600"],
                                        environment: ["PGFLOW_DATABASE_URL": db.conninfo + " application_name=push-second"])
            let completed = try await eventually(timeout: 60) { try stateType(runID, on: c) == "COMPLETED" }
            #expect(completed, "agent output:\n\(second.output.suffix(2000))")
            #expect(try states(runID, on: c) == ["Scheduled", "Pending", "Running", "Completed"], "one attempt, no crash")
            second.signal(SIGTERM)
            #expect(await second.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func aFrozenAgentsOfferLapsesWithItsHeartbeat() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('push', 'noop', 'true')")
            // a 0.5 s heartbeat: the offer counts for 2 s after one
            let agent = try TestProcess("pgflow-agent", ["--name", "push-frozen", "--queue", "default", "--poll", "3600", "--heartbeat", "0.5"],
                                        environment: ["PGFLOW_DATABASE_URL": db.conninfo + " application_name=push-frozen"])
            let offering = try await eventually(timeout: 60) { try offered("push-frozen", on: c) > 0 }
            #expect(offering, "agent output:\n\(agent.output.suffix(2000))")
            agent.signal(SIGSTOP)
            // until its last heartbeat is more than the offer's 2 s old (the listener session lives on)
            let lapsed = try await eventually(timeout: 60) {
                try c.query("""
                    SELECT bool_and(a.last_heartbeat_at < now() - o.fresh_for) FROM pgflow.agent_offers o
                      JOIN pgflow.agents a ON a.id = o.agent_id WHERE a.name = 'push-frozen'
                    """).scalar(Bool?.self) == true
            }
            #expect(lapsed)
            #expect(try listeners("push-frozen", on: c) == 1, "the frozen agent still holds its listener session")
            let runID = try c.query("SELECT pgflow.run_deployment('push/noop')").scalar(UUID.self)
            #expect(try stateType(runID, on: c) == "SCHEDULED", "the run was not pushed to the frozen agent")
            agent.signal(SIGCONT)
            // thawed, it gets the queue's NOTIFY and claims the run
            let completed = try await eventually(timeout: 60) { try stateType(runID, on: c) == "COMPLETED" }
            #expect(completed, "agent output:\n\(agent.output.suffix(2000))")
            #expect(try pendingMessage(runID, on: c) == nil, "claimed, not pushed")
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }
}
