// A restarted database: connections come back, and the agent loses no run and runs none twice.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct DatabaseRestartProcessTests {
    @Test func poolAndListenerComeBackAfterARestart() async throws {
        let cluster = try await TestDatabase.offPool { try TemporaryCluster() }
        let pool = PostgresPool(configuration: cluster.configuration(), maxConnections: 2)
        let before = try await pool.withConnection { $0.backendPID }
        let events = PostgresListener.listen(configuration: cluster.configuration(), channels: ["after_restart"])
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == .listening)
        try await TestDatabase.offPool { try cluster.restart() }
        let after = try await pool.withConnection { c in (c.backendPID, try c.query("SELECT 1").scalar(Int.self)) }
        #expect(after.0 != before && after.1 == 1)
        #expect(await iterator.next() == .listening, "the listener reconnected")
        try await pool.query("SELECT pg_notify('after_restart', 'hello')")
        #expect(await iterator.next() == .notification(channel: "after_restart", payload: "hello", senderPID: after.0))
    }

    @Test func agentLosesNoRunAndRunsNoneTwiceAcrossARestart() async throws {
        let cluster = try await TestDatabase.offPool { try TemporaryCluster() }
        let config = try await TestDatabase.offPool { try cluster.createDatabase("restart") }
        let c = try PostgresConnection(configuration: config)
        try c.query("SELECT pgflow.create_deployment('restart', 'short', 'sleep 0.05')")
        try c.query("SELECT count(*) FROM pgflow.run_deployments('restart/short', array_fill('{}'::jsonb, ARRAY[300]))")
        let agent = try TestProcess("pgflow-agent", ["--queue", "default", "--limit", "8", "--heartbeat", "0.5", "--reconcile-after", "3"],
                                    environment: ["PGFLOW_DATABASE_URL": config.conninfo])
        func completed(_ c: PostgresConnection) throws -> Int {
            try c.query("SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'").scalar(Int.self)
        }
        #expect(try await eventually(timeout: 60) { try completed(c) >= 60 })
        try await TestDatabase.offPool { try cluster.restart() }
        let fresh = try PostgresConnection(configuration: config)
        let allDone = try await eventually(timeout: 120) {
            try fresh.query("SELECT count(*) FROM pgflow.flow_runs WHERE NOT pgflow.is_terminal(state_type)").scalar(Int.self) == 0
        }
        #expect(allDone, "agent output:\n\(agent.output.suffix(3000))")
        // No run lost: all 300 ended. None run twice: one "started" line per run at most, one Completed at most.
        #expect(try fresh.query("SELECT count(*) FROM pgflow.flow_runs").scalar(Int.self) == 300)
        let twice = try fresh.query("""
            SELECT t.flow_run_id::text || ': ' || (SELECT string_agg(l.id || ' ' || l."timestamp" || ' ' || l.message, ' | ' ORDER BY l.id)
                                                     FROM pgflow.logs l WHERE l.flow_run_id = t.flow_run_id)
                   || ' || states: ' || (SELECT string_agg(s.state_name || ' ' || s."timestamp" || coalesce(' ' || s.message, ''), ' | ' ORDER BY s.id)
                                           FROM pgflow.flow_run_states s WHERE s.flow_run_id = t.flow_run_id)
              FROM (SELECT flow_run_id FROM pgflow.logs WHERE message LIKE 'started %'
                     GROUP BY flow_run_id HAVING count(*) > 1) t
            """).rows.map { try $0.decode(String.self, at: 0) }
        #expect(twice.isEmpty, "runs with two 'started' lines: \(twice)")
        #expect(try fresh.query("""
            SELECT count(*) FROM (SELECT flow_run_id FROM pgflow.flow_run_states WHERE state_type = 'COMPLETED'
                                   GROUP BY flow_run_id HAVING count(*) > 1) twice
            """).scalar(Int.self) == 0)
        let outcomes = try fresh.query("""
            SELECT state_name || '=' || count(*) || coalesce(': ' || string_agg(DISTINCT state_message, ' | ')
                   FILTER (WHERE state_type <> 'COMPLETED'), '')
              FROM pgflow.flow_runs GROUP BY state_name ORDER BY 1
            """).rows.map { try $0.decode(String.self, at: 0) }
        #expect(try completed(fresh) == 300, "outcomes: \(outcomes)")
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: 60) == 0)
    }

    @Test func noLogLineIsLostWhileTheDatabaseIsDown() async throws {
        let cluster = try await TestDatabase.offPool { try TemporaryCluster() }
        let config = try await TestDatabase.offPool { try cluster.createDatabase("logs") }
        let c = try PostgresConnection(configuration: config)
        try c.query("SELECT pgflow.create_deployment('logs', 'chatty', $1)",
                    ["sh -c 'i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); sleep 0.02; done'"])
        let runID = try c.query("SELECT pgflow.run_deployment('logs/chatty')").scalar(UUID.self)
        let agent = try TestProcess("pgflow-agent", ["--queue", "default", "--heartbeat", "0.5"],
                                    environment: ["PGFLOW_DATABASE_URL": config.conninfo])
        #expect(try await eventually(timeout: 60) {
            try c.query("SELECT count(*) FROM pgflow.logs WHERE flow_run_id = $1 AND name = 'stdout'", [runID]).scalar(Int.self) >= 10
        })
        // An outage of a few seconds while the command keeps printing.
        try await TestDatabase.offPool { try cluster.stop() }
        try await Task.sleep(for: .seconds(3))
        try await TestDatabase.offPool { try cluster.start() }
        let fresh = try PostgresConnection(configuration: config)
        let completed = try await eventually(timeout: 120) {
            try fresh.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Completed"
        }
        #expect(completed, "agent output:\n\(agent.output.suffix(3000))")
        let lines = try fresh.query("SELECT message FROM pgflow.logs WHERE flow_run_id = $1 AND name = 'stdout' ORDER BY id", [runID])
            .rows.map { try $0.decode(String.self, at: 0) }
        #expect(lines == (0..<300).map { "line \($0)" }, "\(lines.count) lines")
        #expect(!agent.output.contains("dropped"))
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: 60) == 0)
    }
}
