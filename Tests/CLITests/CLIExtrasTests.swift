// `pgflow artifact|variable|secret|block` and `flow-run resume --input` as subprocesses against a real
// database: an artifact from a command deployment's environment, a variable reaching a run's
// parameters, a secret unreadable with another key, a block with a wrong field refused.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct CLIExtrasTests {
    @Test func aCommandDeploymentAttachesArtifactsThroughItsEnvironment() async throws {
        try await CLI.with { cli in
            try cli.sql("SELECT pgflow.create_deployment('report', 'daily', './report.sh')")
            let run = try cli.scalar("SELECT pgflow.run_deployment('report/daily')::text", as: String.self)
            let env = ["PGFLOW_FLOW_RUN_ID": run]
            for version in 1...2 {
                let made = try await cli.run(["artifact", "create", "--markdown", "# Report \(version)", "--key", "daily-report"], environment: env)
                #expect(made.status == 0, "\(made)")
            }
            let table = try await cli.run(["artifact", "create", "--table", "-"], environment: env, stdin: #"[{"rows": 42}]"#)
            #expect(table.status == 0, "\(table)")
            let byRun = try await cli.run("artifact", "ls", "--flow-run", run, "--json")
            let listed = try JSONSerialization.jsonObject(with: Data(byRun.stdout.utf8)) as? [[String: Any]] ?? []
            #expect(listed.map { $0["type"] as? String } == ["table", "markdown", "markdown"])
            let byKey = try await cli.run("artifact", "inspect", "daily-report")
            let versions = try JSONSerialization.jsonObject(with: Data(byKey.stdout.utf8)) as? [[String: Any]] ?? []
            #expect(versions.map { $0["version"] as? Int } == [2, 1])
            #expect(versions.map { $0["data"] as? String } == ["# Report 2", "# Report 1"])
            #expect(versions.allSatisfy { $0["flow_run_id"] as? String == run })
            let progress = try await cli.run(["artifact", "create", "--progress", "10"], environment: env)
            let progressID = progress.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await cli.run("artifact", "update", progressID, "--progress", "60").status == 0)
            #expect(try cli.scalar("SELECT data::text FROM pgflow.artifacts WHERE id = $1::uuid", [progressID], as: String.self) == "60")
            let bad = try await cli.run(["artifact", "create", "--progress", "150"], environment: env)
            #expect(bad.status == 6 && bad.stderr.contains("from 0 to 100"), "\(bad)")
        }
    }

    @Test func aVariableReferencedInParametersReachesTheRun() async throws {
        try await CLI.with { cli in
            #expect(try await cli.run("variable", "set", "region", "eu-west").status == 0)
            #expect(try await cli.run("variable", "get", "region").stdout == "eu-west\n")
            try cli.sql(#"SELECT pgflow.create_deployment('etl', 'daily', './etl.sh', '{"region": "{{ pgflow.variables.region }}"}')"#)
            let started = try await cli.run("deployment", "run", "etl/daily")
            #expect(started.status == 0, "\(started)")
            #expect(try cli.scalar("SELECT parameters->>'region' FROM pgflow.flow_runs", as: String.self) == "eu-west")
            #expect(try await cli.run("variable", "unset", "region").status == 0)
            let missing = try await cli.run("deployment", "run", "etl/daily")
            #expect(missing.status == 5 && missing.stderr.contains("variable 'region', which is not set"), "\(missing)")
        }
    }

    @Test func aSecretSetWithOneKeyIsUnreadableWithAnother() async throws {
        try await CLI.with { cli in
            let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            let otherKey = Data(repeating: 7, count: 32).base64EncodedString()
            let set = try await cli.run(["secret", "set", "api-key"], environment: ["PGFLOW_SECRET_KEY": key], stdin: "s3cret-value\n")
            #expect(set.status == 0, "\(set)")
            let got = try await cli.run(["secret", "get", "api-key"], environment: ["PGFLOW_SECRET_KEY": key])
            #expect(got.stdout == "s3cret-value\n", "\(got)")
            let wrong = try await cli.run(["secret", "get", "api-key"], environment: ["PGFLOW_SECRET_KEY": otherKey])
            #expect(wrong.status == 1 && wrong.stderr.contains("was encrypted with key") && !wrong.stdout.contains("s3cret"), "\(wrong)")
            let noKey = try await cli.run(["secret", "get", "api-key"], environment: ["PGFLOW_SECRET_KEY": ""])
            #expect(noKey.status == 6 && noKey.stderr.contains("no secret key"), "\(noKey)")
            #expect(try await cli.run("secret", "ls").stdout.contains("api-key"))

            // rotate to a key generated into a file; the old key stops working
            let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-key-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: keyFile) }
            let rotated = try await cli.run(["secret", "rotate-key", "--new-key-file", keyFile, "--generate"], environment: ["PGFLOW_SECRET_KEY": key])
            #expect(rotated.status == 0 && rotated.stdout.contains("re-encrypted 1 secret"), "\(rotated)")
            let withNew = try await cli.run(["secret", "get", "api-key"], environment: ["PGFLOW_SECRET_KEY": "", "PGFLOW_SECRET_KEY_FILE": keyFile])
            #expect(withNew.stdout == "s3cret-value\n", "\(withNew)")
            #expect(try await cli.run(["secret", "get", "api-key"], environment: ["PGFLOW_SECRET_KEY": key]).status == 1)
        }
    }

    @Test func aNotificationTargetKeepsItsSigningKeyAndURLAsSecrets() async throws {
        try await CLI.with { cli in
            let key = Data(repeating: 3, count: 32).base64EncodedString()
            let keyFile = try cli.yaml("hmac-k3y-value\n")
            let noKey = try await cli.run(["notification", "target-set", "Ops:Team", "--url", "https://hooks.example/ops", "--signing-key-file", keyFile],
                                          environment: ["PGFLOW_SECRET_KEY": ""])
            #expect(noKey.status != 0 && noKey.stderr.contains("no secret key"), "\(noKey)")
            #expect(try cli.scalar("SELECT count(*) FROM pgflow.notification_targets", as: Int.self) == 0, "the refusal wrote nothing")
            let set = try await cli.run(["notification", "target-set", "Ops:Team", "--url", "https://hooks.example/ops", "--signing-key-file", keyFile],
                                        environment: ["PGFLOW_SECRET_KEY": key])
            #expect(set.status == 0 && set.stdout.contains("stored the signing key as secret notification.ops-team.signing-key"), "\(set)")
            #expect(try await cli.run(["secret", "get", "notification.ops-team.signing-key"], environment: ["PGFLOW_SECRET_KEY": key]).stdout == "hmac-k3y-value\n")
            #expect(try cli.scalar("SELECT count(*) FROM pgflow.notification_targets t WHERE t::text LIKE '%k3y%'", as: Int.self) == 0,
                    "no plaintext key in the database")
            #expect(try await cli.run(["secret", "set", "slack-url"], environment: ["PGFLOW_SECRET_KEY": key], stdin: "https://hooks.slack.example/T0/B0/x").status == 0)
            let slack = try await cli.run("notification", "target-set", "chat", "--url-secret", "slack-url", "--format", "slack")
            #expect(slack.status == 0, "\(slack)")
            let listed = try await cli.run("notification", "targets")
            #expect(listed.stdout.contains("secret:slack-url") && !listed.stdout.contains("hooks.slack.example"), "\(listed)")
            let both = try await cli.run("notification", "target-set", "x", "--url", "http://a/b", "--url-secret", "slack-url")
            #expect(both.status != 0 && both.stderr.contains("--url URL or --url-secret NAME"), "\(both)")
            let unknown = try await cli.run("notification", "target-set", "x", "--url-secret", "nope")
            #expect(unknown.status != 0 && unknown.stderr.contains("pgflow secret set"), "\(unknown)")
        }
    }

    @Test func aBlockWithAWrongFieldIsRefused() async throws {
        try await CLI.with { cli in
            let key = Data(repeating: 9, count: 32).base64EncodedString()
            #expect(try await cli.run(["secret", "set", "slack-url"], environment: ["PGFLOW_SECRET_KEY": key], stdin: "https://hooks.example/x").status == 0)
            let bad = try cli.yaml("url: https://hooks.example/plain\nchannel: 5\n")
            let refused = try await cli.run("block", "create", "slack-webhook/alerts", "-f", bad)
            #expect(refused.status == 6, "\(refused)")
            #expect(refused.stderr.contains("$.channel: expected string, got number"), "\(refused)")
            #expect(refused.stderr.contains("$.url: expected a secret reference"), "\(refused)")
            let good = try cli.yaml("url: {secret: slack-url}\nchannel: alerts\n")
            #expect(try await cli.run("block", "create", "slack-webhook/alerts", "-f", good).status == 0)
            #expect(try await cli.run("block", "inspect", "slack-webhook/alerts").stdout.contains(#""secret": "slack-url""#))
            #expect(try await cli.run("block", "ls").stdout.contains("slack-webhook/alerts"))
        }
    }

    @Test func resumeWithInputChecksTheDeclaredSchema() async throws {
        try await CLI.with { cli in
            try cli.sql("SELECT pgflow.create_deployment('gate', 'approve', './gate.sh')")
            let run = try cli.scalar("SELECT pgflow.run_deployment('gate/approve')::text", as: String.self)
            try cli.sql("SELECT pgflow.set_flow_run_state($1::uuid, 'RUNNING')", [run])
            try cli.sql(#"SELECT pgflow.request_flow_run_input($1::uuid, '{"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}}}')"#, [run])
            try cli.sql("SELECT pgflow.set_flow_run_state($1::uuid, 'PAUSED', p_pause_expires_at => now() + interval '1 hour')", [run])
            let bad = try await cli.run("flow-run", "resume", run, "--input", #"{"approved": 1}"#)
            #expect(bad.status == 6 && bad.stderr.contains("$.approved: expected boolean, got number"), "\(bad)")
            #expect(try cli.scalar("SELECT state_name FROM pgflow.flow_runs WHERE id = $1::uuid", [run], as: String.self) == "Paused")
            let good = try await cli.run("flow-run", "resume", run, "--input", #"{"approved": true}"#)
            #expect(good.status == 0 && good.stdout.hasPrefix("Running"), "\(good)")
            #expect(try cli.scalar("SELECT pgflow.flow_run_input($1::uuid)::text", [run], as: String.self) == #"{"approved": true}"#)
        }
    }
}
