// A primary failover: agents that reach PostgreSQL through one address (a TCP proxy) follow it to the
// promoted synchronous standby, and no run is lost, runs twice at once, or loses a log line.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct FailoverProcessTests {
    static let agents = 3, shortRuns = 288, chattyRuns = 12, chattyLines = 150

    /// What the commands wrote to the trace file: `begin RUN` and `end RUN` lines, by run, in order.
    static func attempts(_ path: String) -> [String: [String]] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var byRun: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count == 2 { byRun[String(words[1]).lowercased(), default: []].append(String(words[0])) }
        }
        return byRun
    }

    @Test func agentsFollowThePromotedStandbyAndLoseNothing() async throws {
        let primary = try await TestDatabase.offPool { try TemporaryCluster(loopback: true) }
        let config = try await TestDatabase.offPool { try primary.createDatabase("failover") }
        let standby = try await TestDatabase.offPool { try primary.addSynchronousStandby() }
        let proxy = try TCPProxy(upstreamPort: primary.port)
        defer { proxy.close() }
        let trace = NSTemporaryDirectory() + "pgflow-failover-\(UUID().uuidString.prefix(8)).trace"
        defer { unlink(trace) }

        // Every attempt writes `begin RUN` / `end RUN` to the trace and prints numbered lines; short runs
        // take ≈ 0.3 s, chatty ones ≈ 3–5 s (running across the failover). Retries: a claim whose reply
        // the dead primary never sent is crashed by the agent's reconcile pass and must come back.
        let c = try PostgresConnection(configuration: config)
        let short = "sh -c 'echo begin $PGFLOW_FLOW_RUN_ID >> \(trace); for i in 0 1 2; do echo line $i; sleep 0.1; done; "
            + "echo end $PGFLOW_FLOW_RUN_ID >> \(trace)'"
        let chatty = "sh -c 'echo begin $PGFLOW_FLOW_RUN_ID >> \(trace); i=0; while [ $i -lt \(Self.chattyLines) ]; do echo line $i; "
            + "i=$((i+1)); sleep 0.02; done; echo end $PGFLOW_FLOW_RUN_ID >> \(trace)'"
        try c.query("SELECT pgflow.create_deployment('failover', 'short', $1, p_retries => 2)", [short])
        try c.query("SELECT pgflow.create_deployment('failover', 'chatty', $1, p_retries => 2)", [chatty])
        for i in 0..<Self.agents {
            try c.query("SELECT pgflow.create_work_queue($1)", ["probe-\(i)"])
            try c.query("SELECT pgflow.create_deployment('probe', $1, 'true', p_work_queue => $2)", ["q\(i)", "probe-\(i)"])
        }
        let chattyIDs = try c.query("SELECT * FROM pgflow.run_deployments('failover/chatty', array_fill('{}'::jsonb, ARRAY[\(Self.chattyRuns)]))")
            .rows.map { try $0.decode(UUID.self, at: 0) }
        try c.query("SELECT count(*) FROM pgflow.run_deployments('failover/short', array_fill('{}'::jsonb, ARRAY[\(Self.shortRuns)]))")
        let total = Self.shortRuns + Self.chattyRuns

        // --poll 3600: after the failover an idle agent claims again only when its listener is back on
        // the new primary (its reconnect wakes the claim loop) or a run of its own ends. The probes
        // below rely on that.
        let url = "host=127.0.0.1 port=\(proxy.port) user=postgres dbname=failover"
        let processes = try (0..<Self.agents).map { i in
            try TestProcess("pgflow-agent", ["--queue", "default", "--queue", "probe-\(i)", "--name", "failover-\(i)", "--limit", "6",
                                             "--heartbeat", "0.5", "--reconcile-after", "3", "--poll", "3600"],
                            environment: ["PGFLOW_DATABASE_URL": url])
        }
        func output() -> String { processes.enumerated().map { "agent \($0.offset):\n\($0.element.output.suffix(2000))" }.joined(separator: "\n") }

        // The failover while every chatty run is printing.
        let printing = try await eventually(timeout: 90) {
            try c.query("""
                SELECT count(*) FROM (SELECT flow_run_id FROM pgflow.logs WHERE name = 'stdout' AND flow_run_id = ANY($1::uuid[])
                                       GROUP BY flow_run_id HAVING count(*) >= 20) x
                """, [chattyIDs.map(\.uuidString)]).scalar(Int.self) == Self.chattyRuns
        }
        try #require(printing, "the chatty runs did not start:\n\(output())")
        let stopping = Date()
        try await TestDatabase.offPool { try primary.stop(immediate: true) }
        try await Task.sleep(for: .seconds(1))  // a failover manager's detection time
        try await TestDatabase.offPool { try standby.promote() }
        proxy.retarget(upstreamPort: standby.port)
        let switched = Date()

        let fresh = try PostgresConnection(configuration: standby.configuration(database: "failover"))
        let waitingAtStop = try fresh.query("""
            SELECT count(*) FROM pgflow.flow_runs r
             WHERE NOT EXISTS (SELECT FROM pgflow.flow_run_states s WHERE s.flow_run_id = r.id AND s.state_type = 'RUNNING' AND s."timestamp" < $1)
            """, [stopping]).scalar(Int.self)
        let allDone = try await eventually(timeout: 180) {
            try fresh.query("SELECT count(*) FROM pgflow.flow_runs WHERE NOT pgflow.is_terminal(state_type)").scalar(Int.self) == 0
        }
        #expect(allDone, "runs still open after the failover:\n\(output())")

        // Every run Completed, once.
        let outcomes = try fresh.query("""
            SELECT state_name || '=' || count(*) || coalesce(': ' || string_agg(DISTINCT state_message, ' | ')
                   FILTER (WHERE state_type <> 'COMPLETED'), '')
              FROM pgflow.flow_runs GROUP BY state_name ORDER BY 1
            """).rows.map { try $0.decode(String.self, at: 0) }
        #expect(try fresh.query("SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'").scalar(Int.self) == total,
                "outcomes: \(outcomes)")
        #expect(try fresh.query("""
            SELECT count(*) FROM (SELECT flow_run_id FROM pgflow.flow_run_states WHERE state_type = 'COMPLETED'
                                   GROUP BY flow_run_id HAVING count(*) > 1) twice
            """).scalar(Int.self) == 0)

        // No two attempts of a run at once: per run, the trace alternates begin, end; as many attempts as
        // the agents logged "started" lines; every attempt's lines stored, in order, none lost, none twice.
        let traced = Self.attempts(trace)
        let runs = try fresh.query("""
            SELECT r.id::text, d.name, (SELECT count(*) FROM pgflow.logs l WHERE l.flow_run_id = r.id AND l.name = 'pgflow.agent' AND l.message LIKE 'started %'),
                   coalesce((SELECT array_agg(l.message ORDER BY l.id) FROM pgflow.logs l WHERE l.flow_run_id = r.id AND l.name = 'stdout'), '{}')
              FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id
             WHERE d.name IN ('short', 'chatty')
            """).rows.map { row in
            (id: try row.decode(String.self, at: 0), kind: try row.decode(String.self, at: 1),
             started: try row.decode(Int.self, at: 2), lines: try row.decode([String].self, at: 3))
        }
        #expect(runs.count == total)
        var overlapping: [String] = [], lost: [String] = [], rerun = 0
        for run in runs {
            let events = traced[run.id] ?? []
            let attempts = events.count / 2
            if events.isEmpty || events != Array(repeating: ["begin", "end"], count: attempts).flatMap({ $0 }) || attempts != run.started {
                overlapping.append("\(run.id): trace \(events), \(run.started) started lines")
            }
            if attempts > 1 { rerun += 1 }
            let expected = (0..<(run.kind == "chatty" ? Self.chattyLines : 3)).map { "line \($0)" }
            if run.lines != Array(repeating: expected, count: max(attempts, 1)).flatMap({ $0 }) {
                lost.append("\(run.id) (\(run.kind)): \(run.lines.count) lines")
            }
        }
        #expect(overlapping.isEmpty, "attempts that overlap or do not match the agents' log: \(overlapping.prefix(10))")
        #expect(lost.isEmpty, "runs whose stdout lines are not all stored exactly once: \(lost.prefix(10))")
        #expect(!output().contains("dropped"))

        // The agents reconnected, each of them: the same processes started runs after the switch (their
        // pools reached the new primary) …
        let startedAfter = try fresh.query("""
            SELECT count(DISTINCT substring(message FROM 'on agent (.*)$')) FROM pgflow.logs
             WHERE name = 'pgflow.agent' AND message LIKE 'started %' AND "timestamp" > $1
            """, [switched]).scalar(Int.self)
        #expect(startedAfter == Self.agents, "agents that started runs after the switch: \(startedAfter) of \(Self.agents); \(waitingAtStop) runs were waiting")
        // … and each one's listener is on it: a run on a queue only that agent serves, enqueued when it
        // is idle, is picked up through its NOTIFY (its poll is an hour away).
        for i in 0..<Self.agents { try fresh.query("SELECT pgflow.run_deployment($1)", ["probe/q\(i)"]) }
        let probed = try await eventually(timeout: 60) {
            try fresh.query("""
                SELECT count(*) FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id
                 WHERE d.name LIKE 'q%' AND r.state_type = 'COMPLETED'
                """).scalar(Int.self) == Self.agents
        }
        #expect(probed, "a probe run was not picked up: an agent's listener did not reconnect\n\(output())")
        for process in processes { #expect(processIsAlive(process.pid), "an agent exited:\n\(output())") }

        // Figures for scripts/bench-failover.sh (printed, never asserted).
        let figures = try fresh.query("""
            SELECT extract(epoch FROM min("timestamp") FILTER (WHERE "timestamp" > $2) - max("timestamp") FILTER (WHERE "timestamp" < $1)),
                   extract(epoch FROM min("timestamp") FILTER (WHERE "timestamp" > $2) - $2)
              FROM pgflow.flow_run_states
            """, [stopping, switched]).rows.first
        let stall = try figures?.decode(Double.self, at: 0) ?? .nan, firstState = try figures?.decode(Double.self, at: 1) ?? .nan
        let everyAgent = try fresh.query("""
            SELECT extract(epoch FROM max(first) - $1) FROM (
                SELECT min("timestamp") AS first FROM pgflow.logs
                 WHERE name = 'pgflow.agent' AND message LIKE 'started %' AND "timestamp" > $1
                 GROUP BY substring(message FROM 'on agent (.*)$')) x
            """, [switched]).scalar(Double.self)
        print(String(format: "failover figures: outage %.3f s (stop -> proxy switched), stall %.3f s (last state before the stop -> first after the switch), "
                     + "switch -> first state %.3f s, switch -> every agent started a run %.3f s, %d runs waiting at the stop, %d runs ran twice",
                     switched.timeIntervalSince(stopping), stall, firstState, everyAgent, waitingAtStop, rerun))

        for process in processes { process.signal(SIGTERM) }
        for process in processes { #expect(await process.waitForExit(timeout: 60) == 0) }
    }
}
