// What an agent takes in: its flags, durations from the database, parameters, its environment.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct AgentInputProcessTests {
    @Test(arguments: [
        ["--poll", "nan"], ["--heartbeat", "1e300"], ["--kill-grace", "inf"], ["--shutdown-grace=-1"],
        ["--fence-timeout", "0"], ["--limit", "0"], ["--fence-timeout", "50"], ["--heartbeat-timeout", "20"],
        ["--pass-env", "A=B"],
    ])
    func badFlagsExitTwoWithOneLine(_ flags: [String]) async throws {
        let agent = try TestProcess("pgflow-agent", flags, environment: ["PGFLOW_DATABASE_URL": "host=/nonexistent"])
        #expect(await agent.waitForExit(timeout: 60) == 2)
        let lines = agent.output.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("pgflow-agent: "), "\(flags): \(agent.output)")
    }

    @Test func unusualTimeoutsDoNotStopTheAgent() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            var runs: [UUID] = []
            for (i, timeout) in ["NaN", "Infinity", "1e17"].enumerated() {
                try c.query("SELECT pgflow.create_deployment('odd', $1, 'true')", ["t\(i)"])
                // Written behind the API's back: what an older schema or a hand edit may leave.
                try c.query("UPDATE pgflow.deployments SET timeout_seconds = $1::float8 WHERE name = $2", [timeout, "t\(i)"])
                runs.append(try c.query("SELECT pgflow.run_deployment($1)", ["odd/t\(i)"]).scalar(UUID.self))
            }
            let agent = try TestProcess("pgflow-agent", ["--queue", "default", "--heartbeat", "0.5"], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            let done = try await eventually(timeout: 60) {
                try c.query("SELECT count(*) FROM pgflow.flow_runs WHERE state_name = 'Completed' AND id = ANY($1)", [runs.map(\.uuidString)]).scalar(Int.self) == 3
            }
            #expect(done, "\(agent.output.suffix(2000))")
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func commandsGetLargeParametersByFileAndNoSecretsOfTheAgent() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let check = """
                sh -c 'test -z "$PGPASSWORD" && test -z "$AGENT_SECRET" && test "$PASSED" = yes && test -z "$PGFLOW_PARAMETERS" \
                && test -r "$PGFLOW_PARAMETERS_FILE" && test $(wc -c < "$PGFLOW_PARAMETERS_FILE") -gt 200000 \
                && test $(wc -c) -gt 200000 && test "$PGFLOW_DATABASE_URL" = for-commands && echo "$PGFLOW_PARAMETERS_FILE"'
                """
            try c.query("SELECT pgflow.create_deployment('env', 'check', $1)", [check])
            let big = "{\"blob\": \"\(String(repeating: "x", count: 250_000))\"}"
            let runID = try c.query("SELECT pgflow.run_deployment('env/check', $1::jsonb)", [big]).scalar(UUID.self)
            let agent = try TestProcess(
                "pgflow-agent", ["--queue", "default", "--pass-env", "PASSED", "--command-database-url", "for-commands"],
                environment: ["PGFLOW_DATABASE_URL": db.conninfo, "PGPASSWORD": "agent-only", "AGENT_SECRET": "x", "PASSED": "yes"])
            let ended = try await eventually(timeout: 60) {
                try c.query("SELECT pgflow.is_terminal(state_type) FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(Bool.self)
            }
            #expect(ended)
            let state = try c.query("SELECT state_name || ': ' || coalesce(state_message, '') FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self)
            #expect(state.hasPrefix("Completed"), "\(state)\n\(agent.output.suffix(2000))")
            // The parameters file is gone after the run.
            let file = try c.query("SELECT message FROM pgflow.logs WHERE flow_run_id = $1 AND name = 'stdout'", [runID]).first?.decode(String.self, at: 0)
            #expect(file.map { !FileManager.default.fileExists(atPath: $0) } == true)
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }
}
