// The commands a Prefect user looks for: agent ls, flow ls, schedule ls|pause|resume|delete,
// deployment run options and set, db prune, --version, completion scripts; idempotent deploys of
// anchored schedules; error hints that name the CLI command; negative numbers reach validation.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct CLINewCommandsTests {
    static let anchoredYAML = """
        deployments:
          - name: etl/anchored
            entrypoint: ./etl.sh
            timeout_seconds: 600
            schedules:
              - interval: 1h
                timezone: Europe/Berlin
                anchor_date: 2026-01-01T00:30:00
              - cron: "0 6 * * *"
                timezone: Europe/Berlin
                anchor_date: "2026-01-01 00:00:00+01:00"
        """

    @Test func theSchedulerTakesItsHeartbeatTimeoutFromTheAgentsVariable() async throws {
        try await CLI.with { cli in
            let bad = try await cli.run(["scheduler", "start", "--once"], environment: ["PGFLOW_HEARTBEAT_TIMEOUT": "soon"])
            #expect(bad.status == 2 && bad.stderr.contains("PGFLOW_HEARTBEAT_TIMEOUT must be seconds"), "\(bad)")
            let good = try await cli.run(["scheduler", "start", "--once"], environment: ["PGFLOW_HEARTBEAT_TIMEOUT": "90"])
            #expect(good.status == 0, "\(good)")
            let flagWins = try await cli.run(["scheduler", "start", "--once", "--heartbeat-timeout", "90"], environment: ["PGFLOW_HEARTBEAT_TIMEOUT": "soon"])
            #expect(flagWins.status == 0, "\(flagWins)")
        }
    }

    @Test func deployingAnAnchoredScheduleThreeTimesChangesNothing() async throws {
        try await CLI.with { cli in
            let file = try cli.yaml(Self.anchoredYAML)
            // the runs of the next 12 hours (the window's far end moves with the clock; these do not)
            let cutoff = Date().addingTimeInterval(12 * 3600)
            let futureRuns = "SELECT string_agg(id::text, ',' ORDER BY expected_start_time) FROM pgflow.flow_runs WHERE expected_start_time <= $1"
            var ids: [String] = []
            for round in 1...3 {
                let deploy = try await cli.run("deploy", "-f", file)
                let expected = round == 1 ? "2 added, 0 removed" : "0 added, 0 removed"
                #expect(deploy.status == 0 && deploy.stdout == "deployed etl/anchored (schedules: \(expected))\n", "round \(round): \(deploy)")
                #expect(try await cli.run("scheduler", "start", "--once").status == 0)
                ids.append(try cli.scalar(futureRuns, [cutoff], as: String.self))
            }
            #expect(ids[0].count > 36 && ids[1] == ids[0] && ids[2] == ids[0], "the same future runs, same ids")
            let anchor = try cli.scalar("SELECT anchor_date::text FROM pgflow.deployment_schedules WHERE kind = 'interval'", as: String.self)
            #expect(anchor == "2025-12-31 23:30:00+00", "a naive anchor_date is wall-clock time in the schedule's zone")
            #expect(try cli.scalar("SELECT timeout_seconds FROM pgflow.deployments", as: Double.self) == 600)
            let changed = try await cli.run("deploy", "-f", try cli.yaml(Self.anchoredYAML.replacingOccurrences(of: "00:30:00", with: "00:45:00")))
            #expect(changed.stdout == "deployed etl/anchored (schedules: 1 added, 1 removed)\n", "\(changed)")
        }
    }

    @Test func agentFlowAndScheduleCommands() async throws {
        try await CLI.with { cli in
            #expect(try await cli.run("deploy", "-f", try cli.yaml(Self.anchoredYAML)).status == 0)
            let agent = try cli.scalar("SELECT pgflow.register_agent('gpu-box', ARRAY['default'])::text", as: String.self)
            try cli.sql("SELECT pgflow.run_deployment('etl/anchored')")
            try cli.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1::uuid, NULL, 1, true)", [agent])
            let agents = try await cli.run("agent", "ls")
            let row = agents.stdout.split(separator: "\n").last.map(String.init) ?? ""
            #expect(agents.status == 0 && row.hasPrefix("gpu-box") && row.contains("{default}") && row.contains("ONLINE"), "\(agents)")
            #expect(row.split(separator: " ", omittingEmptySubsequences: true).contains("1"), "one run held: \(agents)")
            let flows = try await cli.run("flow", "ls")
            #expect(flows.status == 0 && flows.stdout.contains("etl") && flows.stdout.contains("{anchored}"), "\(flows)")

            #expect(try await cli.run("scheduler", "start", "--once").status == 0)
            let json = try await cli.run("schedule", "ls", "--json")
            let schedules = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]] ?? []
            #expect(schedules.count == 2 && schedules.allSatisfy { $0["next_run"] is String }, "\(json)")
            let id = try #require(schedules.first(where: { $0["kind"] as? String == "interval" })?["id"] as? String)
            let futureOfIt = "SELECT count(*)::int FROM pgflow.flow_runs WHERE deployment_schedule_id = $1::uuid AND expected_start_time > now()"
            #expect(try cli.scalar(futureOfIt, [id], as: Int.self) > 0)
            #expect(try await cli.run("schedule", "pause", id).stdout == "paused schedule \(id)\n")
            #expect(try cli.scalar(futureOfIt, [id], as: Int.self) == 0, "pausing removes its future runs")
            let paused = try await cli.run("schedule", "ls", "--deployment", "etl/anchored", "--json")
            #expect(paused.stdout.contains(#""active":false"#), "shown inactive: \(paused)")
            #expect(try await cli.run("schedule", "resume", id).status == 0)
            #expect(try await cli.run("scheduler", "start", "--once").status == 0)
            #expect(try cli.scalar(futureOfIt, [id], as: Int.self) > 0, "resumed: the scheduler creates its runs again")
            #expect(try await cli.run("schedule", "delete", id).status == 0)
            let gone = try await cli.run("schedule", "delete", id)
            #expect(gone.status == 5 && gone.stderr.contains("`pgflow schedule ls` lists them"), "\(gone)")
            #expect(try await cli.run("schedule", "pause", "not-an-id").status == 6)
        }
    }

    @Test func deploymentRunOptionsAndSet() async throws {
        try await CLI.with { cli in
            try cli.sql("SELECT pgflow.create_deployment('r', 'd', './x', p_tags => ARRAY['base'])")
            let first = try await cli.run("deployment", "run", "r/d", "--tag", "adhoc", "--tag", "urgent", "--name", "by-hand",
                                          "--idempotency-key", "nightly-2026-12-01", "--start-at", "2026-12-02T06:00:00Z")
            #expect(first.status == 0, "\(first)")
            let id = first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let again = try await cli.run("deployment", "run", "r/d", "--idempotency-key", "nightly-2026-12-01")
            #expect(again.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == id, "the same key gives the same run")
            let stored = try cli.sql("SELECT name, tags::text, expected_start_time = '2026-12-02 06:00:00+00' AS at FROM pgflow.flow_runs WHERE id = $1::uuid", [id]).first
            #expect(stored?["name"] == "by-hand" && stored?["tags"] == "{adhoc,base,urgent}" && stored?["at"] == "t")
            let queue = try await cli.run("deployment", "run", "r/d", "--work-queue", "nope")
            #expect(queue.status == 5 && queue.stderr.hasSuffix("create it with `pgflow work-queue create nope`\n"), "the CLI command, not SQL: \(queue)")

            let set = try await cli.run("deployment", "set", "r/d", "--timeout", "10m", "--retries", "2", "--concurrency-limit", "3", "--missed-runs", "latest")
            #expect(set.status == 0, "\(set)")
            let d = try cli.sql("SELECT timeout_seconds::text AS t, retries, concurrency_limit, missed_run_policy, tags::text FROM pgflow.deployment_list").first
            #expect(d?["t"] == "600" && d?["retries"] == "2" && d?["concurrency_limit"] == "3" && d?["missed_run_policy"] == "latest" && d?["tags"] == "{base}")
            let negative = try await cli.run("deployment", "set", "r/d", "--concurrency-limit", "-1")
            #expect(negative.status == 6 && negative.stderr.contains("must not be negative, got -1"), "validation says why: \(negative)")
            let queueLimit = try await cli.run("work-queue", "create", "q", "--concurrency-limit", "-1")
            #expect(queueLimit.status == 6 && queueLimit.stderr.contains("must not be negative"), "\(queueLimit)")
            for args in [["concurrency-limit", "create", "db", "-1"], ["work-queue", "set-concurrency-limit", "default", "-1"]] {
                let bad = try await cli.run(args)
                #expect(bad.status == 6 && bad.stderr.contains("must not be negative, got -1"), "a negative positional too: \(bad)")
            }
            #expect(try await cli.run("deployment", "set", "r/d", "--timeout", "-5").status == 6)
            #expect(try await cli.run("deployment", "set", "r/d").status == 6, "nothing to change")
            #expect(try await cli.run("deployment", "set", "r/d", "--timeout", "none").status == 0)
            #expect(try cli.scalar("SELECT timeout_seconds IS NULL FROM pgflow.deployments", as: Bool.self))
        }
    }

    @Test func pruneVersionCompletionAndHelp() async throws {
        try await CLI.with { cli in
            try cli.sql("SELECT pgflow.create_deployment('p', 'd', './x')")
            for _ in 0..<3 {
                let id = try cli.scalar("SELECT pgflow.run_deployment('p/d', p_now => now() - interval '40 days')::text", as: String.self)
                try cli.sql("SELECT pgflow.set_flow_run_state($1::uuid, 'CANCELLED', p_now => now() - interval '40 days')", [id])
            }
            try cli.sql("SELECT pgflow.run_deployment('p/d')")
            let prune = try await cli.run("db", "prune", "--older-than", "30d", "--batch-size", "2")
            #expect(prune.status == 0 && prune.stdout == "deleted 3 finished run(s) older than 30d\n", "\(prune)")
            #expect(prune.stderr.contains("deleted 2 run(s) so far") && prune.stderr.contains("deleted 3 run(s) so far"), "progress: \(prune)")
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.flow_runs", as: Int.self) == 1)
            #expect(try await cli.run("db", "prune", "--older-than", "soon").status == 6)

            let version = try await cli.run("--version")
            #expect(version.status == 0 && version.stdout.hasPrefix("pgflow ") && version.stdout.contains("schema version"), "\(version)")
            let bash = try await cli.run("--generate-completion-script", "bash")
            #expect(bash.status == 0 && bash.stdout.contains("flow-run") && bash.stdout.contains("schedule"), "completion")
            let help = try await cli.run("--help")
            #expect(help.stdout.split(separator: "\n", omittingEmptySubsequences: false).count <= 40, "fits a terminal: \(help.stdout)")
        }
    }
}
