// The agent's LISTEN connection may have a URL of its own: behind a transaction-mode PgBouncer the pool
// goes through PgBouncer and LISTEN, which needs a session, straight to PostgreSQL.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct ListenURLProcessTests {
    @Test func theListenConnectionUsesItsOwnURLAndWakesTheAgent() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('listen', 'noop', 'true')")
            // application_name tells the two URLs' sessions apart in pg_stat_activity; the listener's
            // last statement is its LISTENs or the listener lock it takes after them (pushes)
            let agent = try TestProcess("pgflow-agent", ["--queue", "default", "--heartbeat", "0.5", "--poll", "3600",
                                                         "--listen-database-url", db.conninfo + " application_name=agent-listen"],
                                        environment: ["PGFLOW_DATABASE_URL": db.conninfo + " application_name=agent-pool"])
            func sessions(_ name: String, listening: Bool) throws -> Int {
                try c.query("""
                    SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = $1
                       AND (query LIKE 'LISTEN %' OR query LIKE '%agent_listening%') = $2
                    """, [name, listening]).scalar(Int.self)
            }
            let listening = try await eventually(timeout: 60) { try sessions("agent-listen", listening: true) == 1 }
            #expect(listening, "no LISTEN session with the listen URL:\n\(agent.output.suffix(2000))")
            #expect(try sessions("agent-listen", listening: false) == 0, "only the listener uses the listen URL")
            #expect(try sessions("agent-pool", listening: true) == 0, "the pool does not listen")
            #expect(try await eventually(timeout: 60) { try sessions("agent-pool", listening: false) >= 1 }, "the pool uses the database URL")
            // The poll is an hour away: the run starts because the listener got its NOTIFY (the run is
            // pushed to the idle agent, on its own channel).
            let runID = try c.query("SELECT pgflow.run_deployment('listen/noop')").scalar(UUID.self)
            let completed = try await eventually(timeout: 60) {
                try c.query("SELECT state_type FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "COMPLETED"
            }
            #expect(completed, "agent output:\n\(agent.output.suffix(2000))")
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }

    /// The scheduler's two listeners (events, notifications) take PGFLOW_LISTEN_DATABASE_URL; its pool does not.
    @Test func theSchedulersListenersUseTheListenURL() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let scheduler = try TestProcess("pgflow-scheduler", [],
                                            environment: ["PGFLOW_DATABASE_URL": db.conninfo + " application_name=scheduler-pool",
                                                          "PGFLOW_LISTEN_DATABASE_URL": db.conninfo + " application_name=scheduler-listen"])
            func sessions(_ name: String, listening: Bool) throws -> Int {
                try c.query("""
                    SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = $1 AND (query LIKE 'LISTEN %') = $2
                    """, [name, listening]).scalar(Int.self)
            }
            let listening = try await eventually(timeout: 60) { try sessions("scheduler-listen", listening: true) == 2 }
            #expect(listening, "the scheduler's listeners do not use the listen URL:\n\(scheduler.output.suffix(2000))")
            #expect(try sessions("scheduler-listen", listening: false) == 0)
            #expect(try sessions("scheduler-pool", listening: true) == 0, "the pool does not listen")
            scheduler.signal(SIGTERM)
            #expect(await scheduler.waitForExit(timeout: 60) == 0)
        }
    }
}
