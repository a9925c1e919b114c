// The API as users run it: real pgflow-api (and pgflow-agent, pgflow) processes against a real PostgreSQL.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct APIProcessTests {
    @Test func tokensScopesAndErrors() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let api = try await APIProcess.start(db)
            let (read, run, admin) = (try createToken(c, "reader", "read"), try createToken(c, "runner", "run"), try createToken(c, "admin", "admin"))

            #expect(try await api.client().get("/api/health").status == 200)
            #expect(try await api.client().get("/api/openapi.json").object["openapi"] as? String == "3.1.0")
            let anonymous = try await api.client().get("/api/flow-runs")
            #expect(anonymous.status == 401 && anonymous.headers["content-type"] == "application/problem+json", "\(anonymous)")
            #expect(try await api.client("pgf_" + String(repeating: "0", count: 64)).get("/api/flow-runs").status == 401)
            #expect(try await api.client(read).get("/api/flow-runs").status == 200)
            let forbidden = try await api.client(read).put("/api/deployments/etl/daily", "{\"entrypoint\": \"true\"}")
            #expect(forbidden.status == 403, "\(forbidden)")
            #expect(try await api.client(run).put("/api/deployments/etl/daily", "{\"entrypoint\": \"true\"}").status == 403)
            #expect(try await api.client(admin).put("/api/deployments/etl/daily", "{\"entrypoint\": \"true\"}").status == 200)
            #expect(try await api.client(read).post("/api/deployments/etl/daily/runs").status == 403)
            // the token's verdict comes before anything else about the request
            #expect(try await api.client("pgf_unknown").post("/api/deployments/etl/daily/runs", "{oops").status == 401)
            #expect(try await api.client(read).post("/api/deployments/etl/nope/runs", "{oops").status == 403)
            #expect(try await api.client("pgf_unknown").get("/api/flow-runs/not-a-uuid").status == 401)
            #expect(try await api.client(run).post("/api/deployments/etl/daily/runs").status == 201)
            // path captures are percent-decoded: "nightly run" is reached as nightly%20run
            #expect(try await api.client(admin).put("/api/deployments/etl/nightly%20run", "{\"entrypoint\": \"true\"}").status == 200)
            #expect(try c.query("SELECT count(*) FROM pgflow.deployments WHERE name = 'nightly run'").scalar(Int.self) == 1)
            #expect(try await api.client(read).get("/api/deployments/etl/nightly%20run").status == 200)

            // errors: malformed JSON, wrong types, unknown things, bad values, oversized bodies, wrong states
            let client = api.client(admin)
            let badJSON = try await client.post("/api/deployments/etl/daily/runs", "{\"parameters\": ")
            #expect(badJSON.status == 400 && badJSON.object["status"] as? Int == 400, "\(badJSON)")
            #expect(try await client.post("/api/deployments/etl/daily/runs", "{\"parameters\": [1]}").status == 422)
            #expect(try await client.post("/api/deployments/etl/daily/runs", "{\"tags\": \"x\"}").status == 422)
            let unknown = try await client.post("/api/deployments/etl/nope/runs")
            #expect(unknown.status == 404 && unknown.object["sqlstate"] as? String == "P0002", "\(unknown)")
            #expect(try await client.get("/api/flow-runs/\(UUID())").status == 404)
            #expect(try await client.get("/api/flow-runs/not-a-uuid").status == 404)
            #expect(try await client.get("/api/flow-runs?limit=0").status == 422)
            #expect(try await client.get("/api/flow-runs?limit=x").status == 400)
            #expect(try await client.get("/api/flow-runs?cursor=garbage").status == 422)
            #expect(try await client.get("/api/flow-runs?state_type=SLEEPING").status == 422)
            #expect(try await client.put("/api/deployments/etl/bad", "{\"entrypoint\": \"true\", \"retries\": -1}").status == 422)
            #expect(try await client.put("/api/variables/a%00b", "{\"value\": 1}").status < 500)
            let huge = "{\"parameters\": {\"x\": \"" + String(repeating: "a", count: 2 << 20) + "\"}}"
            #expect(try await client.post("/api/deployments/etl/daily/runs", huge).status == 413)
            #expect(try await client.send("DELETE", "/api/work-queues/default").status == 409)
            // schedules: added, listed, deleted only through their own deployment
            let schedule = try await client.post("/api/deployments/etl/daily/schedules", "{\"kind\": \"cron\", \"expression\": \"0 6 * * *\"}")
            let scheduleID = try #require(schedule.object["id"] as? String, "\(schedule)")
            #expect(try await client.get("/api/deployments/etl/daily/schedules").items.count == 1)
            #expect(try await client.post("/api/deployments/etl/daily/schedules", "{\"kind\": \"cron\", \"expression\": \"nope\"}").status == 422)
            #expect(try await client.put("/api/deployments/etl/other", "{\"entrypoint\": \"true\"}").status == 200)
            #expect(try await client.send("DELETE", "/api/deployments/etl/other/schedules/\(scheduleID)").status == 404)
            #expect(try await client.send("DELETE", "/api/deployments/etl/daily/schedules/\(scheduleID)").status == 204)

            // every change through the API is audited, with its outcome
            let audit = try c.query("""
                SELECT count(*) FILTER (WHERE result = 'ok'), count(*) FILTER (WHERE result LIKE 'error P0002%'),
                       count(*) FILTER (WHERE token_name = 'runner' AND action = 'POST /api/deployments/runs' AND object = 'etl/daily')
                  FROM pgflow.api_audit
                """).rows[0]
            #expect(try audit.decode(Int.self, at: 0) >= 2)
            #expect(try audit.decode(Int.self, at: 1) == 2)  // the unknown deployment, the schedule of another deployment
            #expect(try audit.decode(Int.self, at: 2) == 1)

            // metrics: values from the metrics views, and the API's own request durations
            #expect(try await api.client().get("/metrics").status == 401)
            let metrics = try await api.client(read).get("/metrics")
            #expect(metrics.status == 200 && metrics.body.contains("pgflow_flow_runs{deployment=\"etl/daily\",work_queue=\"default\",state_type=\"SCHEDULED\"")
                    && metrics.body.contains("pgflow_work_queue_oldest_due_age_seconds{work_queue=\"default\"}")
                    && metrics.body.contains("http_server_request_duration"), "\(metrics.body.prefix(3000))")

            // a revoked token stops working at once
            try c.query("SELECT pgflow.revoke_api_token('reader')")
            #expect(try await api.client(read).get("/api/flow-runs").status == 401)
        }
    }

    @Test func runCreatedThroughTheAPIRunsOnARealAgentAndShowsItsStatesAndLogs() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let api = try await APIProcess.start(db)
            let client = api.client(try createToken(c, "ops", "admin"))
            let deployed = try await client.put("/api/deployments/hello/api",
                                                "{\"entrypoint\": \"echo hello from the agent\", \"tags\": [\"api\"], \"retries\": 0}")
            #expect(deployed.status == 200, "\(deployed)")
            let created = try await client.post("/api/deployments/hello/api/runs",
                                                "{\"parameters\": {\"who\": \"api\"}, \"name\": \"via-api\", \"idempotency_key\": \"k1\", \"tags\": [\"extra\"]}")
            #expect(created.status == 201, "\(created)")
            let id = try #require(created.object["id"] as? String)
            #expect(created.object["state_name"] as? String == "Scheduled")
            // the idempotency key returns the same run
            #expect(try await client.post("/api/deployments/hello/api/runs", "{\"idempotency_key\": \"k1\"}").object["id"] as? String == id)

            let agent = try TestProcess("pgflow-agent", ["--queue", "default", "--heartbeat", "0.5"],
                                        environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            let done = try await eventually(timeout: 60) {
                try await client.get("/api/flow-runs/\(id)").object["state_type"] as? String == "COMPLETED"
            }
            #expect(done, "\(agent.output.suffix(2000))")
            let states = try await client.get("/api/flow-runs/\(id)/states").items.compactMap { $0["state_type"] as? String }
            #expect(states == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"], "\(states)")
            let logs = try await client.get("/api/flow-runs/\(id)/logs").items
            #expect(logs.contains { ($0["message"] as? String)?.contains("hello from the agent") == true }, "\(logs)")
            let lastLog = try #require(logs.last?["id"] as? Int)
            #expect(try await client.get("/api/flow-runs/\(id)/logs?after=\(lastLog)").items.isEmpty)
            // the run's stream with logs: its states and log lines so far
            let stream = try await client.stream("/api/stream?flow_run=\(id)&logs=true", timeout: 30) {
                $0.contains("hello from the agent") && $0.contains("\"state_name\":\"Completed\"")
            }
            #expect(stream.contains("event: log") && stream.contains("hello from the agent") && stream.contains("Completed"), "\(stream)")

            // listings and filters
            let page = try await client.get("/api/flow-runs?deployment=hello/api&state_type=COMPLETED&tag=extra&limit=10")
            #expect(page.items.map { $0["id"] as? String } == [id], "\(page)")
            #expect(try await client.get("/api/flow-runs?state_type=FAILED").items.isEmpty)
            #expect(try await client.get("/api/agents").items.count == 1)
            #expect(try await client.get("/api/work-queues/default").object["name"] as? String == "default")

            // a finished run can be retried, and then cancelled; deleted only when not in progress
            #expect(try await client.post("/api/flow-runs/\(id)/resume").status == 409)
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
            #expect(try await client.post("/api/flow-runs/\(id)/retry").object["state_name"] as? String == "Scheduled")
            #expect(try await client.post("/api/flow-runs/\(id)/cancel").object["state_type"] as? String == "CANCELLED")
            #expect(try await client.send("DELETE", "/api/flow-runs/\(id)").status == 204)
            #expect(try await client.get("/api/flow-runs/\(id)").status == 404)
        }
    }

    @Test func keysetPagesCoverEveryRunOnce() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('page', 'd', 'true')")
            try c.query("SELECT count(*) FROM pgflow.run_deployments('page/d', array_fill('{}'::jsonb, ARRAY[25]))")
            let api = try await APIProcess.start(db)
            let client = api.client(try createToken(c, "r", "read"))
            var seen: [String] = [], cursor: String? = nil
            repeat {
                let reply = try await client.get("/api/flow-runs?limit=10" + (cursor.map { "&cursor=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") } ?? ""))
                seen += reply.items.compactMap { $0["id"] as? String }
                cursor = reply.object["next_cursor"] as? String
            } while cursor != nil && seen.count < 100
            #expect(seen.count == 25 && Set(seen).count == 25)
        }
    }

    @Test func aRunCreatedThroughOneReplicaIsSeenLiveOnAnothersStream() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let token = try createToken(c, "ops", "admin")
            let (a, b) = (try await APIProcess.start(db), try await APIProcess.start(db))
            #expect(try await a.client(token).put("/api/deployments/live/d", "{\"entrypoint\": \"true\"}").status == 200)
            // B's stream of the deployment's runs, open (subscribed: it has sent its first line) before the run exists
            let open = OpenFlag()
            async let seen = b.client(token).stream("/api/stream?deployment=live/d", timeout: 60) { text in
                if text.contains("retry: ") { open.set() }
                return text.contains("\"state_name\":\"Scheduled\"") && text.contains("\"state_name\":\"Cancelled\"")
            }
            #expect(await eventually(timeout: 60) { open.isSet })
            let id = try #require(try await a.client(token).post("/api/deployments/live/d/runs").object["id"] as? String)
            #expect(try await a.client(token).post("/api/flow-runs/\(id)/cancel").status == 200)
            let text = try await seen
            #expect(text.contains(id) && text.contains("\"state_name\":\"Cancelled\""), "\(text)")

            // resuming from Last-Event-ID returns only what came after it
            let firstID = try #require(text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n").first { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) })
            let resumed = try await b.client(token).stream("/api/stream?flow_run=\(id)", timeout: 30, headers: ["Last-Event-ID": firstID]) {
                $0.contains("\"state_name\":\"Cancelled\"")
            }
            #expect(resumed.contains("Cancelled") && !resumed.contains("\"state_name\":\"Scheduled\""), "\(resumed)")
        }
    }

    @Test func sigtermEndsOpenStreamsAndExitsCleanly() async throws {
        try await TestDatabase.with { db in
            let api = try await APIProcess.start(db)
            let client = api.client(try createToken(try db.connect(), "r", "read"))
            let open = OpenFlag()
            async let ended = client.stream("/api/stream", timeout: 60) { text in
                if text.contains("retry: ") { open.set() }
                return false
            }
            #expect(await eventually(timeout: 60) { open.isSet })
            api.process.signal(SIGTERM)
            #expect(await api.process.waitForExit(timeout: 60) == 0, "\(api.process.output)")
            #expect(try await ended.contains("retry: "))
        }
    }

    @Test func tokenCommandsOfTheCLI() async throws {
        try await TestDatabase.with { db in
            let api = try await APIProcess.start(db)
            let created = try TestProcess("pgflow", ["api", "token", "create", "--name", "ci", "--scope", "read"],
                                          environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            #expect(await created.waitForExit(timeout: 60) == 0)
            let token = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(token.hasPrefix("pgf_") && token.count == 68, "\(token)")
            #expect(try await api.client(token).get("/api/flows").status == 200)
            let c = try db.connect()
            #expect(try c.query("SELECT count(*) FROM pgflow.api_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))", [token]).scalar(Int.self) == 1)
            let listed = try TestProcess("pgflow", ["api", "token", "ls"], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            #expect(await listed.waitForExit(timeout: 60) == 0)
            #expect(listed.output.contains("ci") && !listed.output.contains(token))
            let revoked = try TestProcess("pgflow", ["api", "token", "revoke", "ci"], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            #expect(await revoked.waitForExit(timeout: 60) == 0)
            #expect(try await api.client(token).get("/api/flows").status == 401)
            let again = try TestProcess("pgflow", ["api", "token", "revoke", "ci"], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            #expect(await again.waitForExit(timeout: 60) == 5)
        }
    }
}

/// Set once, read from any thread.
final class OpenFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
