// The agent as users run it: real pgflow-agent processes against a real PostgreSQL, crashes included.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct AgentProcessTests {
    static func agent(_ db: TestDatabase, _ extra: [String] = []) throws -> TestProcess {
        try TestProcess("pgflow-agent", ["--queue", "default", "--heartbeat", "0.5", "--kill-grace", "1"] + extra,
                        environment: ["PGFLOW_DATABASE_URL": db.conninfo, "PGFLOW_LOG_LEVEL": "info"])
    }

    /// The command's pid, from the agent's "started … as pid N" log line (waits up to 20 s for it).
    static func childPID(_ c: PostgresConnection, _ runID: UUID) async throws -> Int32? {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let line = try c.query("SELECT message FROM pgflow.logs WHERE flow_run_id = $1 AND message LIKE 'started % as pid %'", [runID]).first {
                return Int32(try line.decode(String.self, at: 0).split(separator: " ")[4])
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    @Test func threeAgentsDrainThreeThousandRunsExactlyOnce() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('drain', 'noop', 'true')")
            try c.query("SELECT count(*) FROM pgflow.run_deployments('drain/noop', array_fill('{}'::jsonb, ARRAY[3000]))")
            let agents = try (0..<3).map { _ in try Self.agent(db, ["--limit", "16"]) }
            let drained = try await eventually(timeout: 240) {
                try c.query("SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'").scalar(Int.self) == 3000
            }
            let completed = try c.query("SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'").scalar(Int.self)
            #expect(drained, "completed: \(completed)\n\(agents[0].output.suffix(2000))")
            // Exactly once: every run entered Running once and Completed once, with no crash or retry.
            let histories = try c.query("""
                SELECT count(*) FILTER (WHERE running = 1 AND completed = 1 AND others = 0),
                       count(DISTINCT agent_id), sum(running), sum(completed)
                  FROM (SELECT r.id, r.agent_id,
                               count(*) FILTER (WHERE s.state_type = 'RUNNING') AS running,
                               count(*) FILTER (WHERE s.state_type = 'COMPLETED') AS completed,
                               count(*) FILTER (WHERE s.state_type NOT IN ('SCHEDULED', 'PENDING', 'RUNNING', 'COMPLETED')) AS others
                          FROM pgflow.flow_runs r JOIN pgflow.flow_run_states s ON s.flow_run_id = r.id
                         GROUP BY r.id, r.agent_id) h
                """).rows[0]
            #expect(try histories.decode(Int.self, at: 0) == 3000)
            #expect(try histories.decode(Int.self, at: 1) == 3, "all three agents took part")
            #expect(try histories.decode(Int.self, at: 2) == 3000)
            for agent in agents { agent.signal(SIGTERM) }
            for agent in agents { #expect(await agent.waitForExit(timeout: 60) == 0) }
        }
    }

    @Test func killedAgentsRunCrashesAndIsRetriedWithoutAnOrphan() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('crash', 'sleeper', 'sleep 60', p_retries => 1)")
            let runID = try c.query("SELECT pgflow.run_deployment('crash/sleeper')").scalar(UUID.self)
            let agent = try Self.agent(db)
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Running"
            })
            let pid = try #require(try await Self.childPID(c, runID))
            #expect(processIsAlive(pid))
            agent.signal(SIGKILL)
            _ = await agent.waitForExit(timeout: 60)
            // The child dies with its agent (parent-death signal): the run cannot go on twice.
            #expect(await eventually(timeout: 60) { !processIsAlive(pid) })
            // The reaper (any process may call it) crashes the run once the heartbeat is 2 s old.
            var reaped = 0
            _ = try await eventually(timeout: 60) {
                reaped += try c.query("SELECT pgflow.reap_crashed_runs(interval '2 seconds')").scalar(Int.self)
                return reaped > 0
            }
            #expect(reaped == 1)
            // Crashed with a retry left is redirected to AwaitingRetry, and the state says why.
            let last = try #require(try c.query(
                "SELECT state_name, message FROM pgflow.flow_run_states WHERE flow_run_id = $1 ORDER BY id DESC LIMIT 1", [runID]).first)
            #expect(try last.decode(String.self, at: 0) == "AwaitingRetry")
            let why = try last.decode(String.self, at: 1)
            #expect(why.contains("stopped heartbeating") && why.contains("Crashed: retry 1 of 1"), "message: \(why)")
            // A new agent picks up the retry.
            let second = try Self.agent(db)
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_name || ':' || run_count FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Retrying:2"
            })
            try c.query("SELECT pgflow.cancel_flow_run($1)", [runID])
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_type::text FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "CANCELLED"
            })
            second.signal(SIGTERM)
            #expect(await second.waitForExit(timeout: 60) == 0)
        }
    }

    /// Cancel reaches the agent by NOTIFY (its heartbeat, the fallback, is an hour away) and stops the
    /// process. How fast is measured by scripts/bench-agent.sh, not asserted here.
    @Test func cancellingARunningCommandStopsItThroughTheNotify() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('cancel', 'sleeper', 'sleep 60')")
            let runID = try c.query("SELECT pgflow.run_deployment('cancel/sleeper')").scalar(UUID.self)
            let agent = try Self.agent(db, ["--heartbeat", "3600", "--heartbeat-timeout", "7300"])  // the NOTIFY must do it, not the heartbeat
            let pid = try #require(try await Self.childPID(c, runID))
            try c.query("SELECT pgflow.cancel_flow_run($1)", [runID])
            let cancelled = try await eventually(timeout: 120) {
                try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Cancelled"
            }
            #expect(cancelled, "not Cancelled: \(agent.output.suffix(2000))")
            #expect(!processIsAlive(pid))
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func failingCommandRunsThreeTimesWithItsRetryDelays() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('flaky', 'always-fails', 'sh -c \"echo attempt $PGFLOW_RUN_COUNT >&2; exit 7\"', p_retries => 2, p_retry_delays => '{1,2}', p_retry_backoff => 'list')")
            let runID = try c.query("SELECT pgflow.run_deployment('flaky/always-fails')").scalar(UUID.self)
            let agent = try Self.agent(db, ["--poll", "0.1"])
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_type::text FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "FAILED"
            })
            let run = try #require(try c.query("SELECT run_count, state_message FROM pgflow.flow_runs WHERE id = $1", [runID]).first)
            #expect(try run.decode(Int.self, at: 0) == 3)
            #expect(try run.decode(String.self, at: 1).contains("exited with code 7"))
            // Each retry started no earlier than its delay after the failure before it.
            let retryGaps = try c.query("""
                SELECT extract(epoch FROM r."timestamp" - a."timestamp")::float8
                  FROM pgflow.flow_run_states a
                  JOIN LATERAL (SELECT "timestamp" FROM pgflow.flow_run_states r
                                 WHERE r.flow_run_id = a.flow_run_id AND r.id > a.id AND r.state_name = 'Retrying'
                                 ORDER BY r.id LIMIT 1) r ON true
                 WHERE a.flow_run_id = $1 AND a.state_name = 'AwaitingRetry' ORDER BY a.id
                """, [runID]).rows.map { try $0.decode(Double.self, at: 0) }
            #expect(retryGaps.count == 2 && retryGaps[0] >= 1 && retryGaps[1] >= 2, "gaps \(retryGaps)")
            let stderr = try c.query("SELECT string_agg(message, ',' ORDER BY id) FROM pgflow.logs WHERE flow_run_id = $1 AND name = 'stderr'", [runID]).scalar(String.self)
            #expect(stderr == "attempt 1,attempt 2,attempt 3")
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func commandPastItsTimeoutIsStoppedAndEndsTimedOut() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('slow', 'sleeper', 'sleep 60', p_timeout_seconds => 1)")
            let runID = try c.query("SELECT pgflow.run_deployment('slow/sleeper')").scalar(UUID.self)
            let agent = try Self.agent(db)
            let pid = try #require(try await Self.childPID(c, runID))
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "TimedOut"
            })
            let run = try #require(try c.query(
                "SELECT state_type::text, state_message, extract(epoch FROM end_time - start_time)::float8 FROM pgflow.flow_runs WHERE id = $1", [runID]).first)
            #expect(try run.decode(String.self, at: 0) == "FAILED")
            #expect(try run.decode(String.self, at: 1).contains("timeout of 1.0 s"))
            #expect(try run.decode(Double.self, at: 2) < 5)
            #expect(!processIsAlive(pid))
            let bad = try #require(throws: PostgresError.self) {
                try c.query("SELECT pgflow.create_deployment('slow', 'bad', 'true', p_timeout_seconds => -1)")
            }
            #expect(bad.sqlState == "22023")
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func anSDKProgramRunAsACommandAttachesToTheClaimedRun() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let examples = TestProcess.binDirectory.appendingPathComponent("pgflow-examples").path
            try c.query("SELECT pgflow.create_deployment('examples', 'fan-out', $1)", ["\(examples) fan-out"])
            let runID = try c.query("SELECT pgflow.run_deployment('examples/fan-out')").scalar(UUID.self)
            let agent = try Self.agent(db)
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_type::text FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "COMPLETED"
            })
            // One flow run (the claimed one, no second run created by the program), with the program's
            // task runs and result attached to it.
            #expect(try c.query("SELECT count(*) FROM pgflow.flow_runs WHERE parent_task_run_id IS NULL").scalar(Int.self) == 1)
            #expect(try c.query("SELECT count(*) FROM pgflow.task_runs WHERE flow_run_id = $1", [runID]).scalar(Int.self) > 0)
            #expect(try c.query("SELECT result IS NOT NULL FROM pgflow.flow_run_history WHERE id = $1", [runID]).scalar(Bool.self))
            #expect(try c.query("SELECT count(*) FROM pgflow.flow_run_states WHERE flow_run_id = $1 AND state_type = 'COMPLETED'", [runID]).scalar(Int.self) == 1)
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }
}
