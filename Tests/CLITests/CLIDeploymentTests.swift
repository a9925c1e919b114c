// `pgflow db`, `pgflow deploy` and `pgflow deployment`, the real binary against a real database.
import Foundation
import PGFlowTestSupport
import PGFlowPostgres
import Testing

@Suite struct CLIDeploymentTests {
    static let goodYAML = """
        deployments:
          - name: etl/daily
            entrypoint: ./etl.sh
            parameters: {region: eu, n: 3}
            tags: [etl]
            retries: 2
            retry_delays: [1, 10]
            schedules:
              - cron: "0 6 * * *"
                timezone: Europe/Paris
              - interval: 1h30m
          - name: etl/hourly
            entrypoint: swift:hourly
            work_queue: default
            concurrency_limit: 1
            schedule:
              rrule: "FREQ=HOURLY;BYMINUTE=5"
        """

    @Test func dbStatusUpgradeAndReset() async throws {
        try await CLI.with { cli in
            let status = try await cli.run("db", "status")
            #expect(status.status == 0 && status.stdout.contains("pending: none"), "\(status)")
            #expect(try await cli.run("db", "upgrade").stdout.contains("schema is current"))
            try cli.sql("SELECT pgflow.create_deployment('f', 'd', './x')")
            let refused = try await cli.run("db", "reset")
            #expect(refused.status == 6 && refused.stderr.contains("--yes"), "\(refused)")
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.deployments", as: Int.self) == 1)
            let reset = try await cli.run("db", "reset", "--yes")
            #expect(reset.status == 0, "\(reset)")
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.deployments", as: Int.self) == 0)
            let unreachable = try await cli.run("db", "status", "--database-url", "postgresql:///nope?host=/nonexistent&connect_timeout=1")
            #expect(unreachable.status == 3 && unreachable.stderr.split(separator: "\n").count == 1, "\(unreachable)")
        }
    }

    @Test func deployIsIdempotentAndReportsBadInputWithItsLine() async throws {
        try await CLI.with { cli in
            let file = try cli.yaml(Self.goodYAML)
            let first = try await cli.run("deploy", "--file", file)
            #expect(first.status == 0 && first.stdout.contains("deployed etl/daily (schedules: 2 added"), "\(first)")
            #expect(try await cli.run("deploy", "--file", file).status == 0)
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.deployment_schedules", as: Int.self) == 3, "re-deploying adds no schedules")
            let params = try cli.scalar("SELECT parameters::text FROM pgflow.deployments WHERE name = 'daily'", as: String.self)
            #expect(params == #"{"n": 3, "region": "eu"}"#)
            #expect(try cli.scalar("SELECT retry_backoff FROM pgflow.deployments WHERE name = 'daily'", as: String.self) == "list")

            let badCron = try cli.yaml(Self.goodYAML.replacingOccurrences(of: "\"0 6 * * *\"", with: "\"61 6 * * *\""))
            let cron = try await cli.run("deploy", "-f", badCron)
            #expect(cron.status == 6, "\(cron)")
            #expect(cron.stderr == "pgflow: \(badCron):9: invalid cron \"61 6 * * *\": minute 61 is out of range 0-59\n")
            let badKey = try cli.yaml(Self.goodYAML.replacingOccurrences(of: "    retries: 2", with: "    retires: 2"))
            let key = try await cli.run("deploy", "-f", badKey)
            #expect(key.status == 6 && key.stderr.hasPrefix("pgflow: \(badKey):6: unknown deployment key `retires`"), "\(key)")
            let badZone = try await cli.run("deploy", "-f", try cli.yaml(Self.goodYAML.replacingOccurrences(of: "Europe/Paris", with: "Mars/Base")))
            #expect(badZone.status == 6 && badZone.stderr.contains(":10: unknown time zone \"Mars/Base\""), "\(badZone)")
            let missing = try await cli.run("deploy", "-f", "/nonexistent/pgflow.yaml")
            #expect(missing.status == 6 && missing.stderr.contains("cannot read /nonexistent/pgflow.yaml"), "\(missing)")
            let unknownQueue = try await cli.run("deploy", "-f", try cli.yaml(Self.goodYAML.replacingOccurrences(of: "work_queue: default", with: "work_queue: nope")))
            #expect(unknownQueue.status == 6 && unknownQueue.stderr.contains(":12: etl/hourly: unknown work queue 'nope'"), "\(unknownQueue)")
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.deployment_schedules", as: Int.self) == 3, "failed deploys changed nothing")
            let badPolicy = try await cli.run("deploy", "-f", try cli.yaml(Self.goodYAML.replacingOccurrences(of: "    retries: 2", with: "    missed_runs: sometimes")))
            #expect(badPolicy.status == 6 && badPolicy.stderr.contains(":6: missed_runs must be run_all, latest or skip"), "\(badPolicy)")
            let policy = try await cli.run("deploy", "-f", try cli.yaml(Self.goodYAML.replacingOccurrences(of: "    retries: 2", with: "    missed_runs: latest")))
            #expect(policy.status == 0, "\(policy)")
            let stored = "SELECT coalesce(missed_run_policy, 'none') FROM pgflow.deployments WHERE name = 'daily'"
            #expect(try cli.scalar(stored, as: String.self) == "latest")
            #expect(try await cli.run("deploy", "-f", file).status == 0)
            #expect(try cli.scalar(stored, as: String.self) == "none", "the file is the truth: no missed_runs, the scheduler's default")
            let fewer = try await cli.run("deploy", "-f", try cli.yaml(Self.goodYAML.replacingOccurrences(of: "      - interval: 1h30m\n", with: "")))
            #expect(fewer.status == 0 && fewer.stdout.contains("deployed etl/daily (schedules: 0 added, 1 removed)"), "\(fewer)")
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.deployment_schedules WHERE \"interval\" IS NOT NULL", as: Int.self) == 0)
        }
    }

    @Test func deploymentCommands() async throws {
        try await CLI.with { cli in
            #expect(try await cli.run("deploy", "-f", try cli.yaml(Self.goodYAML)).status == 0)
            let ls = try await cli.run("deployment", "ls")
            #expect(ls.stdout.hasPrefix("DEPLOYMENT") && ls.stdout.contains("etl/hourly"), "\(ls)")
            let json = try await cli.run("deployment", "ls", "--json")
            let list = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
            #expect(list?.compactMap { $0["deployment"] as? String } == ["etl/daily", "etl/hourly"])
            let inspect = try await cli.run("deployment", "inspect", "etl/daily")
            #expect(inspect.status == 0 && inspect.stdout.contains("Europe/Paris"), "\(inspect)")
            let unknown = try await cli.run("deployment", "inspect", "etl/nope")
            #expect(unknown.status == 5 && unknown.stderr == "pgflow: unknown deployment 'etl/nope'; name it as flow/deployment; `pgflow deployment ls` lists them\n", "\(unknown)")

            let run = try await cli.run("deployment", "run", "etl/daily", "--param", "day=2026-11-21", "--param", "n=5", "--params", #"{"extra": [1]}"#, "--start-in", "1h")
            #expect(run.status == 0, "\(run)")
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let stored = try cli.scalar("SELECT parameters::text FROM pgflow.flow_runs WHERE id = $1::uuid", [id], as: String.self)
            #expect(stored == #"{"n": 5, "day": "2026-11-21", "extra": [1], "region": "eu"}"#)
            let delay = try cli.scalar("SELECT extract(epoch FROM expected_start_time - now())::float8 FROM pgflow.flow_runs WHERE id = $1::uuid", [id], as: Double.self)
            #expect(abs(delay - 3600) < 60)
            for (args, message) in [
                (["--param", "oops"], "bad --param \"oops\": write key=value"),
                (["--params", "[1]"], "--params must be a JSON object"),
                (["--start-in", "soon"], "bad --start-in \"soon\""),
            ] {
                let bad = try await cli.run(["deployment", "run", "etl/daily"] + args)
                #expect(bad.status == 6 && bad.stderr.hasPrefix("pgflow: \(message)"), "\(bad)")
            }
            #expect(try await cli.run("deployment", "run", "nope/nope").status == 5)

            #expect(try await cli.run("deployment", "pause", "etl/daily").status == 0)
            #expect(try cli.scalar("SELECT paused FROM pgflow.deployments WHERE name = 'daily'", as: Bool.self))
            #expect(try await cli.run("deployment", "resume", "etl/daily").status == 0)
            #expect(try !cli.scalar("SELECT paused FROM pgflow.deployments WHERE name = 'daily'", as: Bool.self))
            let agent = try cli.scalar("SELECT pgflow.register_agent('a', ARRAY['default'])::text", as: String.self)
            let running = try cli.scalar("SELECT pgflow.run_deployment('etl/hourly')::text", as: String.self)
            try cli.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1::uuid, NULL, 1, true)", [agent])
            let refused = try await cli.run("deployment", "delete", "etl/hourly")
            #expect(refused.status == 1 && refused.stderr.contains("has 1 run(s) in progress") && refused.stderr.contains("cancel them first"), "\(refused)")
            try cli.sql("SELECT pgflow.set_flow_run_state($1::uuid, 'COMPLETED')", [running])
            let delete = try await cli.run("deployment", "delete", "etl/hourly")
            #expect(delete.status == 0 && delete.stdout == "deleted etl/hourly and 0 run(s) that had not started\n", "\(delete)")
            let daily = try await cli.run("deployment", "delete", "etl/daily")
            #expect(daily.status == 0 && daily.stdout.contains("and 1 run(s)"), "the run due in an hour goes: \(daily)")
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.deployments", as: Int.self) == 0)
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.deployment_schedules", as: Int.self) == 0)
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.flow_runs WHERE deployment_id IS NULL", as: Int.self) == 1, "history stays")
            #expect(try await cli.run("deployment", "delete", "etl/daily").status == 5)
        }
    }

    @Test func runWatchFollowsTheRunUntilItEnds() async throws {
        try await CLI.with { cli in
            try cli.sql("SELECT pgflow.create_deployment('w', 'd', './x')")
            let (process, out, _) = try cli.start(["deployment", "run", "w/d", "--watch"])
            #expect(try await eventually(timeout: 60) { try cli.scalar("SELECT count(*)::int FROM pgflow.flow_runs", as: Int.self) == 1 })
            let agent = try cli.scalar("SELECT pgflow.register_agent('a', ARRAY['default'])", as: String.self)
            try cli.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1::uuid, NULL, 1, true)", [agent])
            try cli.sql("SELECT pgflow.set_flow_run_state(id, 'COMPLETED') FROM pgflow.flow_runs")
            #expect(await exited(process))
            let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0)
            let states = output.split(separator: "\n").dropFirst().map { $0.split(separator: " ").last.map(String.init) ?? "" }
            #expect(states == ["Scheduled", "Pending", "Running", "Completed"], "every state, in order, though the run was faster than any poll: \(output)")
        }
    }
}
