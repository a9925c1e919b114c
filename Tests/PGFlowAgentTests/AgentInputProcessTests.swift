// What an agent takes in: its flags, durations from the database, parameters, its environment.
import Foundation
import PGFlowPostgres
import PGFlowSecrets
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

    @Test(arguments: [["PGFLOW_SECRET_KEY": "not base64!"], ["PGFLOW_SECRET_KEY": "c2hvcnQ="], ["PGFLOW_SECRET_KEY_FILE": "/nonexistent/key"]])
    func anUnusableSecretKeyStopsTheAgentAtStart(_ environment: [String: String]) async throws {
        let agent = try TestProcess("pgflow-agent", ["--queue", "default"], environment: environment.merging(["PGFLOW_DATABASE_URL": "host=/nonexistent"]) { a, _ in a })
        #expect(await agent.waitForExit(timeout: 60) == 2)
        let lines = agent.output.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("pgflow-agent: bad secret key"), "\(environment): \(agent.output)")
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

    @Test func secretsReachTheCommandAndNeverItsLogs() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let key = SecretKey.generate()
            try SecretStore(key: key).set("api-key", value: "s3cr3t-value-42", on: c)
            // prints the secret, and proves it arrived by its length and a derived value
            let command = #"sh -c 'echo "key=$API_KEY"; echo "len=${#API_KEY}" >&2; test "$API_KEY" = s3cr3t-value-42'"#
            for name in ["with", "unset"] {
                try c.query("SELECT pgflow.create_deployment('sec', $1, $2)", [name, command])
            }
            try c.query("SELECT pgflow.set_deployment_secret_env('sec/with', '{\"API_KEY\": {\"secret\": \"api-key\"}}')")
            try c.query("SELECT pgflow.set_deployment_secret_env('sec/unset', '{\"API_KEY\": {\"secret\": \"no-such-secret\"}}')")
            let withSecret = try c.query("SELECT pgflow.run_deployment('sec/with')").scalar(UUID.self)
            let missing = try c.query("SELECT pgflow.run_deployment('sec/unset')").scalar(UUID.self)
            let ids = [withSecret, missing].map(\.uuidString)
            func finished() throws -> Bool {
                try c.query("SELECT count(*) FROM pgflow.flow_runs WHERE id = ANY($1) AND pgflow.is_terminal(state_type)", [ids]).scalar(Int.self) == 2
            }
            func state(_ id: UUID) throws -> String {
                try c.query("SELECT state_name || ': ' || coalesce(state_message, '') FROM pgflow.flow_runs WHERE id = $1", [id]).scalar(String.self)
            }

            // An agent without the key fails the run, saying what to do; the command never starts.
            let keyless = try TestProcess("pgflow-agent", ["--queue", "default"], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            #expect(try await eventually(timeout: 60) { try finished() }, "\(keyless.output.suffix(2000))")
            keyless.signal(SIGTERM)
            #expect(await keyless.waitForExit(timeout: 60) == 0)
            let keylessState = try state(withSecret)
            #expect(keylessState.contains("has no secret key"), "\(keylessState)")
            #expect(try c.query("SELECT count(*) FROM pgflow.logs WHERE flow_run_id = $1 AND name IN ('stdout', 'stderr')", [withSecret]).scalar(Int.self) == 0)

            // Retried on an agent with the key: the command gets the value; the logs show *** instead.
            try c.query("SELECT pgflow.retry_flow_run($1)", [withSecret])
            try c.query("SELECT pgflow.retry_flow_run($1)", [missing])
            let agent = try TestProcess("pgflow-agent", ["--queue", "default"], environment: ["PGFLOW_DATABASE_URL": db.conninfo, "PGFLOW_SECRET_KEY": key.base64])
            #expect(try await eventually(timeout: 60) { try finished() }, "\(agent.output.suffix(2000))")
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
            let keyedState = try state(withSecret), missingState = try state(missing)
            #expect(keyedState.hasPrefix("Completed"), "\(keyedState)")
            let lines = try c.query("SELECT message FROM pgflow.logs WHERE flow_run_id = $1 AND name IN ('stdout', 'stderr') ORDER BY message", [withSecret])
                .rows.map { try $0.decode(String.self, at: 0) }
            #expect(lines == ["key=***", "len=15"], "\(lines)")
            #expect(try c.query("SELECT count(*) FROM pgflow.logs WHERE message LIKE '%s3cr3t-value-42%'").scalar(Int.self) == 0)
            // A mapped secret that does not exist fails its run by name.
            #expect(missingState.contains("unknown secret no-such-secret"), "\(missingState)")
            #expect(!agent.output.contains("s3cr3t-value-42") && !keyless.output.contains("s3cr3t-value-42"))
        }
    }
}
