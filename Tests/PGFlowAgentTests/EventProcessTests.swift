// Events and automations with real processes (docs/events.md): pgflow-scheduler --events-only
// evaluates, fires and notifies; an in-process agent runs the flows; a test HTTP receiver on 127.0.0.1
// takes the webhooks.
import Crypto
import Foundation
import Logging
import PGFlowAgent
import PGFlowPostgres
import PGFlowSecrets
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct EventProcessTests {
    static func evaluator(_ db: TestDatabase, _ extra: [String] = [], key: SecretKey? = nil) throws -> TestProcess {
        var environment = ["PGFLOW_DATABASE_URL": db.conninfo, "PGFLOW_LOG_LEVEL": "info"]
        if let key { environment["PGFLOW_SECRET_KEY"] = key.base64 }
        return try TestProcess("pgflow-scheduler", ["--events-only"] + extra, environment: environment)
    }

    /// Stores secrets sealed with a new key (as `pgflow secret set` does) and returns the key.
    static func secrets(_ values: [String: String], _ pool: PostgresPool) async throws -> SecretKey {
        let key = SecretKey.generate()
        try await pool.withConnection { c in for (name, value) in values { try SecretStore(key: key).set(name, value: value, on: c) } }
        return key
    }

    static func hmacHex(_ body: String, key: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: SymmetricKey(data: Data(key.utf8))).map { String(format: "%02x", $0) }.joined()
    }

    @Test func deploymentBRunsWhenACompletesWithAsResultInItsParameters() async throws {
        try await TestDatabase.with { db in
            let c = PostgresPool(configuration: db.configuration, maxConnections: 2)  // queries off the cooperative pool
            defer { c.close() }
            try await c.query("SELECT pgflow.create_deployment('etl', 'extract', 'swift:extract')")
            try await c.query("SELECT pgflow.create_deployment('etl', 'load', 'swift:load')")
            try await c.query("""
                SELECT pgflow.create_automation('extract-then-load',
                    '{"type": "flow-run-state", "deployment": "etl/extract", "states": ["Completed"]}',
                    '[{"type": "run-deployment", "deployment": "etl/load", "parameters": {"upstream": "{{ flow_run.result }}", "run": "{{ event.resource.id }}"}}]')
                """)
            let scheduler = try Self.evaluator(db)
            let extract = AgentFlow(name: "extract") { _ in #"{"rows": 42, "file": "s3://b/k"}"# }
            let load = AgentFlow(name: "load") { _ in nil }
            let runA = try await c.query("SELECT pgflow.run_deployment('etl/extract')").scalar(UUID.self)
            try await InProcessAgentTests.withAgent(db, flows: [extract, load]) { _ async throws in
                let ran = try await eventually(timeout: 60) {
                    try await c.query("""
                        SELECT count(*) FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id
                         WHERE d.name = 'load' AND r.state_name = 'Completed'
                        """).scalar(Int.self) == 1
                }
                #expect(ran, "B did not complete\n\(scheduler.output.suffix(2000))")
            }
            let parameters = try await c.query("""
                SELECT r.parameters::text FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id WHERE d.name = 'load'
                """).scalar(String.self)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(parameters.utf8)) as? [String: Any])
            let upstream = try #require(object["upstream"] as? [String: Any], "\(parameters)")
            #expect(upstream["rows"] as? Int == 42)
            #expect(upstream["file"] as? String == "s3://b/k")
            #expect(object["run"] as? String == runA.uuidString.lowercased())
            #expect(try await c.query("SELECT count(*) FROM pgflow.automation_firings WHERE status = 'done'").scalar(Int.self) == 1)
            scheduler.signal(SIGTERM)
            #expect(await scheduler.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func aFailureNotificationIsSignedRetriedAfterTwo500sAndDeadLettered() async throws {
        try await TestDatabase.with { db in
            let c = PostgresPool(configuration: db.configuration, maxConnections: 2)  // queries off the cooperative pool
            defer { c.close() }
            let receiver = try TestHTTPReceiver(statuses: [500, 500, 200])
            let deadEnd = try TestHTTPReceiver(statuses: [503])
            let key = try await Self.secrets(["ops-key": "sekrit"], c)
            try await c.query("SELECT pgflow.set_notification_target('ops', $1, 'json', 'ops-key', 5, 0.2)", [receiver.url()])
            try await c.query("SELECT pgflow.set_notification_target('void', $1, 'slack', NULL, 2, 0.2)", [deadEnd.url()])
            try await c.query("SELECT pgflow.create_deployment('etl', 'nightly', './nightly.sh')")
            try await c.query("""
                SELECT pgflow.create_automation('nightly-failed', '{"type": "flow-run-state", "deployment": "etl/nightly", "states": ["Failed", "Crashed"]}',
                    '[{"type": "send-notification", "target": "ops", "message": "{{ event.resource.name }} failed: {{ event.payload.message }}"},
                      {"type": "send-notification", "target": "void"}]')
                """)
            let scheduler = try Self.evaluator(db, key: key)
            let run = try await c.query("SELECT pgflow.run_deployment('etl/nightly')").scalar(UUID.self)
            for state in ["PENDING", "RUNNING"] { try await c.query("SELECT pgflow.set_flow_run_state($1, $2)", [run, state]) }
            try await c.query("SELECT pgflow.set_flow_run_state($1, 'FAILED', p_message => 'disk full')", [run])
            let delivered = try await eventually(timeout: 60) {
                try await c.query("SELECT status FROM pgflow.notification_list WHERE target = 'ops'").first?.decode(String.self, at: 0) == "delivered"
            }
            #expect(delivered, "\(scheduler.output.suffix(3000))")
            let requests = receiver.requests
            #expect(requests.map(\.status) == [500, 500, 200])
            for r in requests {
                #expect(r.headers["x-pgflow-signature"] == "sha256=" + Self.hmacHex(r.body, key: "sekrit"), "a valid signature on every attempt")
                #expect(r.headers["content-type"] == "application/json")
            }
            #expect(requests.map { $0.headers["x-pgflow-attempt"] } == ["1", "2", "3"])
            let body = try #require(try JSONSerialization.jsonObject(with: Data(requests[0].body.utf8)) as? [String: Any])
            #expect((body["message"] as? String)?.hasSuffix("failed: disk full") == true, "\(body)")
            #expect(((body["event"] as? [String: Any])?["event"] as? String) == "pgflow.flow-run.Failed")
            #expect(try await c.query("SELECT attempts FROM pgflow.notification_list WHERE target = 'ops'").scalar(Int.self) == 3)

            // the other target always answers 503: a dead letter after its 2 attempts, in SQL and the CLI
            #expect(try await eventually(timeout: 60) {
                try await c.query("SELECT count(*) FROM pgflow.notification_dead_letters WHERE target = 'void'").scalar(Int.self) == 1
            })
            #expect(deadEnd.requests.count == 2)
            #expect(deadEnd.requests.first?.headers["x-pgflow-signature"] == nil, "no key: unsigned")
            #expect((deadEnd.requests.first?.body ?? "").hasPrefix(#"{"text":"#), "the slack body")
            let cli = try TestProcess("pgflow", ["notification", "dead-letters", "--json"], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            #expect(await cli.waitForExit(timeout: 60) == 0)
            #expect(cli.output.contains("\"status\":\"dead\"") && cli.output.contains("HTTP 503"), "\(cli.output)")
            let id = try await c.query("SELECT id FROM pgflow.notification_dead_letters").scalar(Int64.self)
            let retry = try TestProcess("pgflow", ["notification", "retry", String(id)], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            #expect(await retry.waitForExit(timeout: 60) == 0)
            #expect(try await eventually(timeout: 60) { deadEnd.requests.count == 4 }, "retried: two more attempts")
            scheduler.signal(SIGTERM)
            #expect(await scheduler.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func anHttpsTargetFromSecretsGetsItOverVerifiedTLSAndAnUntrustedCertificateIsRefused() async throws {
        try await TestDatabase.with { db in
            let c = PostgresPool(configuration: db.configuration, maxConnections: 2)  // queries off the cooperative pool
            defer { c.close() }
            let receiver = try TestHTTPReceiver(statuses: [200])
            let stranger = try TestHTTPReceiver(statuses: [200])
            let trusted = try await TestTLSRelay.start(targetPort: receiver.port)
            let untrusted = try await TestTLSRelay.start(targetPort: stranger.port)  // a certificate nobody trusts
            // the https URL and the signing key are secrets: the database holds their names and ciphertext only
            let key = try await Self.secrets(["secure-url": trusted.url(), "secure-key": "sekrit", "mitm-url": untrusted.url()], c)
            try await c.query("SELECT pgflow.set_notification_target('secure', NULL, 'json', 'secure-key', 5, 0.2, p_url_secret => 'secure-url')")
            try await c.query("SELECT pgflow.set_notification_target('mitm', NULL, 'json', NULL, 1, 0.2, p_url_secret => 'mitm-url')")
            let stored = try await c.query("SELECT string_agg(t::text, ' ') FROM pgflow.notification_targets t").scalar(String.self)
            #expect(!stored.contains("127.0.0.1") && !stored.contains("sekrit"), "\(stored)")
            try await c.query("SELECT pgflow.create_deployment('etl', 'nightly', './nightly.sh')")
            try await c.query("""
                SELECT pgflow.create_automation('nightly-failed', '{"type": "flow-run-state", "deployment": "etl/nightly", "states": ["Failed"]}',
                    '[{"type": "send-notification", "target": "secure"}, {"type": "send-notification", "target": "mitm"}]')
                """)
            let scheduler = try Self.evaluator(db, ["--notify-ca-file", trusted.certificateFile], key: key)
            let run = try await c.query("SELECT pgflow.run_deployment('etl/nightly')").scalar(UUID.self)
            for state in ["PENDING", "RUNNING"] { try await c.query("SELECT pgflow.set_flow_run_state($1, $2)", [run, state]) }
            try await c.query("SELECT pgflow.set_flow_run_state($1, 'FAILED', p_message => 'disk full')", [run])
            let delivered = try await eventually(timeout: 60) {
                try await c.query("SELECT status FROM pgflow.notification_list WHERE target = 'secure'").first?.decode(String.self, at: 0) == "delivered"
            }
            #expect(delivered, "\(scheduler.output.suffix(3000))\n\(trusted.output)")
            let requests = receiver.requests
            #expect(requests.count == 1)
            if let r = requests.first {
                #expect(r.headers["x-pgflow-signature"] == "sha256=" + Self.hmacHex(r.body, key: "sekrit"))
                let body = try #require(try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])
                #expect(((body["event"] as? [String: Any])?["event"] as? String) == "pgflow.flow-run.Failed")
            }
            // the other relay's certificate is not in the CA file: refused before a byte of the body is sent
            #expect(try await eventually(timeout: 60) {
                try await c.query("SELECT count(*) FROM pgflow.notification_dead_letters WHERE target = 'mitm'").scalar(Int.self) == 1
            })
            let error = try await c.query("SELECT last_error FROM pgflow.notification_list WHERE target = 'mitm'").scalar(String.self)
            #expect(error.lowercased().contains("certificate"), "\(error)")
            #expect(!error.contains(untrusted.url()) && !scheduler.output.contains(untrusted.url()), "the secret URL is never shown")
            #expect(stranger.requests.isEmpty)
            scheduler.signal(SIGTERM)
            #expect(await scheduler.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func aProactiveTriggerFiresWhenARunDoesNotCompleteWithinItsWindow() async throws {
        try await TestDatabase.with { db in
            let c = PostgresPool(configuration: db.configuration, maxConnections: 2)  // queries off the cooperative pool
            defer { c.close() }
            try await c.query("SELECT pgflow.create_deployment('etl', 'slow', './slow.sh')")
            try await c.query("""
                SELECT pgflow.create_automation('slow-run', '{"type": "proactive", "after": "pgflow.flow-run.Running",
                    "expect": ["pgflow.flow-run.Completed", "pgflow.flow-run.Failed"], "resource": {"deployment": "etl/slow"}, "within": "1 hour"}',
                    '[{"type": "cancel-flow-run"}, {"type": "emit-event", "event": "acme.run.overdue", "resource": {"id": "{{ event.resource.id }}"}}]')
                """)
            let scheduler = try Self.evaluator(db)
            let stuck = try await c.query("SELECT pgflow.run_deployment('etl/slow')").scalar(UUID.self)
            let fine = try await c.query("SELECT pgflow.run_deployment('etl/slow')").scalar(UUID.self)
            for run in [stuck, fine] {
                for state in ["PENDING", "RUNNING"] { try await c.query("SELECT pgflow.set_flow_run_state($1, $2)", [run, state]) }
            }
            try await c.query("SELECT pgflow.set_flow_run_state($1, 'COMPLETED')", [fine])
            // the running evaluator records both waits
            #expect(try await eventually(timeout: 60) {
                try await c.query("SELECT count(*) FROM pgflow.automation_expectations").scalar(Int.self) == 2
            }, "\(scheduler.output.suffix(2000))")
            // time is injected: half the window passes, then all of it
            #expect(try await c.query("SELECT pgflow.evaluate_proactive(now() + interval '59 minutes')").scalar(Int.self) == 0)
            #expect(try await c.query("SELECT pgflow.evaluate_proactive(now() + interval '61 minutes')").scalar(Int.self) == 2)
            #expect(try await c.query("SELECT state_type::text FROM pgflow.flow_runs WHERE id = $1", [stuck]).scalar(String.self) == "CANCELLING")
            #expect(try await c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [fine]).scalar(String.self) == "Completed")
            #expect(try await c.query("SELECT count(*) FROM pgflow.events WHERE event = 'acme.run.overdue' AND resource_id = $1",
                                [stuck.uuidString.lowercased()]).scalar(Int.self) == 1)
            #expect(try await c.query("SELECT pgflow.evaluate_proactive(now() + interval '3 hours')").scalar(Int.self) == 0, "fired once")
            scheduler.signal(SIGTERM)
            #expect(await scheduler.waitForExit(timeout: 60) == 0)
        }
    }

    @Test func fourEvaluatorsFireEachActionExactlyOnceOverTenThousandEventsWithOneKilled() async throws {
        try await TestDatabase.with { db in
            let c = PostgresPool(configuration: db.configuration, maxConnections: 2)  // queries off the cooperative pool
            defer { c.close() }
            try await c.query("""
                SELECT pgflow.create_automation('tick-tock', '{"match": "test.tick"}',
                    '[{"type": "emit-event", "event": "test.tock", "resource": {"id": "{{ event.resource.id }}"}}]')
                """)
            let evaluators = try (0..<4).map { _ in try Self.evaluator(db, ["--event-batch-size", "50"]) }
            var killed = false
            for chunk in 0..<20 {
                try await c.query("SELECT count(pgflow.emit_event('test.tick', jsonb_build_object('id', ($1 * 500 + g)::text))) FROM generate_series(1, 500) g", [chunk])
                if !killed, try await c.query("SELECT count(*) FROM pgflow.automation_firings").scalar(Int.self) > 1500 {
                    evaluators[1].signal(SIGKILL)
                    killed = true
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            if !killed {
                _ = try await eventually(timeout: 60) { try await c.query("SELECT count(*) FROM pgflow.automation_firings").scalar(Int.self) > 2000 }
                evaluators[1].signal(SIGKILL)
            }
            #expect(await evaluators[1].waitForExit(timeout: 60) != nil, "the evaluator was killed")
            let done = try await eventually(timeout: 240) {
                try await c.query("SELECT count(*) FROM pgflow.automation_firings").scalar(Int.self) == 10_000
            }
            let fired = try await c.query("SELECT count(*) FROM pgflow.automation_firings").scalar(Int.self)
            #expect(done, "fired \(fired) of 10000\n\(evaluators[0].output.suffix(2000))")
            // exactly once: one firing and one emitted event per tick, none missing, none twice
            let check = try await c.query("""
                SELECT (SELECT count(DISTINCT trigger_key) FROM pgflow.automation_firings),
                       (SELECT count(*) FROM pgflow.events WHERE event = 'test.tock'),
                       (SELECT count(DISTINCT resource_id) FROM pgflow.events WHERE event = 'test.tock'),
                       (SELECT count(*) FROM pgflow.automation_firings WHERE status <> 'done')
                """).rows[0]
            #expect(try check.decode(Int.self, at: 0) == 10_000)
            #expect(try check.decode(Int.self, at: 1) == 10_000)
            #expect(try check.decode(Int.self, at: 2) == 10_000)
            #expect(try check.decode(Int.self, at: 3) == 0)
            try await Task.sleep(for: .seconds(2))
            #expect(try await c.query("SELECT count(*) FROM pgflow.events WHERE event = 'test.tock'").scalar(Int.self) == 10_000, "and no more later")
            for (i, e) in evaluators.enumerated() where i != 1 { e.signal(SIGTERM) }
            for (i, e) in evaluators.enumerated() where i != 1 { #expect(await e.waitForExit(timeout: 60) == 0) }
        }
    }
}
