// `pgflow flow-run ls` (newest first by default, --upcoming, filters, sort, states in any case),
// the one timestamp format, `logs` with levels, `inspect` with parameters and the agent's name.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct CLIFlowRunListingTests {
    /// A deployment with 20 per-minute runs an hour ahead (none falls due during a slow test), one
    /// completed run, one TimedOut run.
    private func setUp(_ cli: CLI) throws -> (completed: String, timedOut: String) {
        try cli.sql("SELECT pgflow.create_deployment('etl', 'minutely', './x', p_tags => ARRAY['nightly'])")
        try cli.sql("SELECT pgflow.create_deployment('other', 'd', './x')")
        let schedule = try cli.scalar("SELECT pgflow.create_deployment_schedule('etl/minutely', 'cron', '* * * * *')::text", as: String.self)
        try cli.sql("""
            SELECT pgflow.schedule_flow_runs($1::uuid, ARRAY(SELECT date_trunc('minute', now()) + interval '1 hour' + n * interval '1 minute'
                                                         FROM generate_series(1, 20) n))
            """, [schedule])
        let agent = try cli.scalar("SELECT pgflow.register_agent('laptop-7', ARRAY['default'])::text", as: String.self)
        let completed = try cli.scalar("SELECT pgflow.run_deployment('etl/minutely', '{\"day\": \"mon\"}', p_flow_run_name => 'done-one')::text", as: String.self)
        try cli.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1::uuid, NULL, 1, true)", [agent])
        try cli.sql("SELECT pgflow.write_log($1::uuid, 40, 'disk almost full', 'stdout')", [completed])
        try cli.sql("SELECT pgflow.set_flow_run_state($1::uuid, 'COMPLETED', p_agent_id => $2::uuid)", [completed, agent])
        let timedOut = try cli.scalar("SELECT pgflow.run_deployment('other/d', p_flow_run_name => 'slow-one')::text", as: String.self)
        try cli.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1::uuid, NULL, 1, true)", [agent])
        try cli.sql("SELECT pgflow.set_flow_run_state($1::uuid, 'FAILED', 'TimedOut', p_agent_id => $2::uuid)", [timedOut, agent])
        return (completed, timedOut)
    }

    private func names(_ result: CLIResult) -> [String] {
        result.stdout.split(separator: "\n").dropFirst().map { String($0.split(separator: " ", omittingEmptySubsequences: true)[1]) }
    }

    @Test func defaultListingIsNewestFirstNotTheFuture() async throws {
        try await CLI.with { cli in
            let (completed, timedOut) = try setUp(cli)
            let ls = try await cli.run("flow-run", "ls")
            #expect(ls.status == 0 && names(ls) == ["slow-one", "done-one"], "newest activity first, no future run: \(ls)")
            let upcoming = try await cli.run("flow-run", "ls", "--upcoming", "--limit", "3", "--json")
            let runs = try JSONSerialization.jsonObject(with: Data(upcoming.stdout.utf8)) as? [[String: Any]] ?? []
            let times = runs.compactMap { $0["scheduled"] as? String }
            #expect(runs.count == 3 && times == times.sorted() && runs.allSatisfy { $0["state"] as? String == "Scheduled" }, "\(upcoming)")
            #expect(try await cli.run("flow-run", "ls", "--scheduled", "--limit", "50").stdout.split(separator: "\n").count == 21)

            for state in ["timedout", "TimedOut", "timed_out", "FAILED", "failed"] {
                let found = try await cli.run("flow-run", "ls", "--state", state)
                #expect(found.status == 0 && found.stdout.contains(timedOut) && !found.stdout.contains(completed), "\(state): \(found)")
            }
            let bogus = try await cli.run("flow-run", "ls", "--state", "bogus")
            #expect(bogus.status == 6 && bogus.stdout.isEmpty && bogus.stderr.hasPrefix("pgflow: unknown state 'bogus'; use a state type"), "\(bogus)")
            #expect(names(try await cli.run("flow-run", "ls", "--flow", "other")) == ["slow-one"])
            #expect(names(try await cli.run("flow-run", "ls", "--deployment", "etl/minutely")) == ["done-one"])
            #expect(names(try await cli.run("flow-run", "ls", "--tag", "nightly", "--upcoming", "--limit", "1")).count == 1)
            #expect(names(try await cli.run("flow-run", "ls", "--tag", "nightly")) == ["done-one"])
            #expect(names(try await cli.run("flow-run", "ls", "--since", "1h")) == ["slow-one", "done-one"])
            #expect(try await cli.run("flow-run", "ls", "--since", "2099-01-01").stdout == "(none)\n")
            #expect(names(try await cli.run("flow-run", "ls", "--sort", "created")) == ["slow-one", "done-one"])
            let byName = try await cli.run("flow-run", "ls", "--sort", "name")
            #expect(byName.status == 6 && byName.stderr.contains("unknown sort 'name'"), "a sort of the whole history is refused: \(byName)")
            #expect(try await cli.run("flow-run", "ls", "--sort", "color").status == 6)
            #expect(try await cli.run("flow-run", "ls", "--flow", "nope").status == 5)
            let negative = try await cli.run("flow-run", "ls", "--limit", "-1")
            #expect(negative.status == 6 && negative.stderr.contains("limit must be 1 or more, got -1"), "the real reason, not 'Missing value': \(negative)")
        }
    }

    @Test func oneTimestampFormatLocalByDefaultUTCOnAskISOInJSON() async throws {
        try await CLI.with { cli in
            try cli.sql("SELECT pgflow.create_deployment('t', 'd', './x')")
            try cli.sql("SELECT pgflow.run_deployment('t/d', p_scheduled_time => '2026-12-01 08:45:00+00', p_flow_run_name => 'whole')")
            try cli.sql("SELECT pgflow.run_deployment('t/d', p_scheduled_time => '2026-12-01 07:06:03.25+00', p_flow_run_name => 'fraction')")
            let berlin = try await cli.run(["flow-run", "ls", "--state", "scheduled"], environment: ["TZ": "Europe/Berlin"])
            #expect(berlin.stdout.contains("2026-12-01 09:45:00+01:00") && berlin.stdout.contains("2026-12-01 08:06:03+01:00"), "\(berlin)")
            let utc = try await cli.run(["flow-run", "ls", "--state", "scheduled", "--utc"], environment: ["TZ": "Europe/Berlin"])
            #expect(utc.stdout.contains("2026-12-01 08:45:00+00:00") && utc.stdout.contains("2026-12-01 07:06:03+00:00"), "\(utc)")
            let json = try await cli.run(["flow-run", "ls", "--state", "scheduled", "--json"], environment: ["TZ": "Europe/Berlin"])
            #expect(json.stdout.contains(#""scheduled":"2026-12-01T08:45:00+00:00""#) && json.stdout.contains(#""scheduled":"2026-12-01T07:06:03.25+00:00""#), "\(json)")
        }
    }

    @Test func logsShowTheLevelAndInspectShowsParametersAndTheAgentsName() async throws {
        try await CLI.with { cli in
            let (completed, _) = try setUp(cli)
            let logs = try await cli.run("flow-run", "logs", completed)
            #expect(logs.status == 0 && logs.stdout.contains(" ERROR   stdout disk almost full"), "\(logs)")
            let follow = try await cli.run("flow-run", "logs", completed, "--follow")
            #expect(follow.status == 0 && follow.stdout.contains("ERROR"), "a finished run's logs, then the end: \(follow)")
            let inspect = try await cli.run("flow-run", "inspect", completed)
            #expect(inspect.stdout.contains("agent ") && inspect.stdout.contains("laptop-7"), "\(inspect)")
            #expect(inspect.stdout.contains(#"{"day": "mon"}"#), "parameters in the table: \(inspect)")
            try cli.sql("SELECT pgflow.update_deployment('etl/minutely', '{\"version\": \"v7\", \"description\": \"every minute\", \"timeout_seconds\": 90}')")
            let deployment = try await cli.run("deployment", "inspect", "etl/minutely")
            for text in ["v7", "every minute", "timeout_seconds", "90", "parameters"] {
                #expect(deployment.stdout.contains(text), "\(text): \(deployment)")
            }
        }
    }

    @Test func logsFollowPrintsLinesAsTheyComeAndEndsWithTheRun() async throws {
        try await CLI.with { cli in
            try cli.sql("SELECT pgflow.create_deployment('l', 'd', './x')")
            let run = try cli.scalar("SELECT pgflow.run_deployment('l/d')::text", as: String.self)
            let agent = try cli.scalar("SELECT pgflow.register_agent('a', ARRAY['default'])::text", as: String.self)
            try cli.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1::uuid, NULL, 1, true)", [agent])
            let (process, out, _) = try cli.start(["flow-run", "logs", run, "--follow"])
            try cli.sql("SELECT pgflow.write_log($1::uuid, 20, 'first line', 'stdout')", [run])
            try cli.sql("SELECT pgflow.write_log($1::uuid, 30, 'second line', 'stderr')", [run])
            try cli.sql("SELECT pgflow.set_flow_run_state($1::uuid, 'FAILED', p_agent_id => $2::uuid)", [run, agent])
            #expect(await exited(process))
            let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 1, "the run failed")
            #expect(output.contains("INFO    stdout first line") && output.contains("WARNING stderr second line"), "\(output)")
        }
    }
}
