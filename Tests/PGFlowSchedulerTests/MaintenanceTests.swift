// Late runs and missed-run policies, the reaper, pause expiry and retention, against a real PostgreSQL.
import Foundation
import PGFlowClient
import PGFlowPostgres
import PGFlowScheduler
import Testing

@Suite struct MaintenanceTests {
    let t0 = instant("2030-01-01T00:00:00Z")

    func hours(_ h: Double) -> Date { t0.addingTimeInterval(h * 3600) }

    /// Three hourly deployments materialised 4 h ahead, then nothing runs until 03:30.
    func missedRuns(_ f: Fixture, policies: [String: String?]) async throws {
        for (name, policy) in policies.sorted(by: { $0.key < $1.key }) {
            try await f.deployment("mr", name, at: t0)
            try await f.schedule("mr/\(name)", "cron", "0 * * * *", at: t0)
            if let policy { try await f.sql("SELECT pgflow.set_deployment_missed_run_policy($1, $2)", ["mr/\(name)", policy]) }
        }
        var c = ScheduleMaterializer.Configuration()
        c.window.horizon = 4 * 3600
        try await ScheduleMaterializer(configuration: c, pool: f.pool, logger: f.logger).runOnce(now: t0)
    }

    func states(_ f: Fixture, _ name: String) async throws -> [String] {
        try await f.strings("""
            SELECT to_char(r.expected_start_time AT TIME ZONE 'UTC', 'HH24') || ' ' || r.state_name FROM pgflow.flow_runs r
              JOIN pgflow.deployments d ON d.id = r.deployment_id WHERE d.name = $1 ORDER BY 1
            """, [name])
    }

    @Test func lateRunsAndTheThreeMissedRunPolicies() async throws {
        try await Fixture.with { f in
            try await missedRuns(f, policies: ["all": "run_all", "latest": "latest", "skip": "skip", "unset": nil])
            var c = LateRunService.Configuration()
            c.defaultMissedRunPolicy = .latest
            let service = LateRunService(configuration: c, pool: f.pool, logger: f.logger)
            let early = try await service.runOnce(now: hours(1).addingTimeInterval(10))
            #expect(early == .init(late: 0, cancelled: 0), "10 s past 01:00 is not late yet (threshold 15 s)")
            let counts = try await service.runOnce(now: hours(3.5))
            // 01, 02, 03 of four deployments are Late first; then skip cancels 3, latest and unset (default latest) 2 each
            #expect(counts == .init(late: 12, cancelled: 7))
            #expect(try await states(f, "all") == ["01 Late", "02 Late", "03 Late", "04 Scheduled"])
            #expect(try await states(f, "latest") == ["01 Cancelled", "02 Cancelled", "03 Late", "04 Scheduled"])
            #expect(try await states(f, "unset") == ["01 Cancelled", "02 Cancelled", "03 Late", "04 Scheduled"])
            #expect(try await states(f, "skip") == ["01 Cancelled", "02 Cancelled", "03 Cancelled", "04 Scheduled"])
            #expect(try await service.runOnce(now: hours(3.5)) == .init(late: 0, cancelled: 0), "a second pass changes nothing")
            let queued = try await f.int("SELECT count(*)::int FROM pgflow.run_queue")
            #expect(queued == 4 + 2 + 2 + 1, "cancelled runs left the claimable set")
        }
    }

    @Test func theDefaultPolicyAppliesToDeploymentsThatSetNone() async throws {
        try await Fixture.with { f in
            try await missedRuns(f, policies: ["plain": nil, "own": "run_all"])
            var c = LateRunService.Configuration()
            c.defaultMissedRunPolicy = .skip
            let counts = try await LateRunService(configuration: c, pool: f.pool, logger: f.logger).runOnce(now: hours(3.5))
            #expect(counts.cancelled == 3)
            #expect(try await states(f, "plain") == ["01 Cancelled", "02 Cancelled", "03 Cancelled", "04 Scheduled"])
            #expect(try await states(f, "own") == ["01 Late", "02 Late", "03 Late", "04 Scheduled"], "a deployment's own policy wins")
        }
    }

    @Test func theReaperCrashesTheRunsOfSilentAgentsAndRetriesThem() async throws {
        try await Fixture.with { f in
            try await f.deployment("rp", "retried", retries: 1, limit: 1, at: t0)
            try await f.deployment("rp", "once", at: t0)
            let agent = try await f.agent(at: t0)
            let healthy = try await f.agent(at: t0)
            try await f.sql("SELECT pgflow.run_deployment('rp/retried', p_now => $1)", [t0])
            try await f.sql("SELECT pgflow.run_deployment('rp/once', p_now => $1)", [t0])
            #expect(try await f.claimAll(agent: agent, at: t0).count == 2)
            try await f.sql("SELECT pgflow.create_concurrency_limit('db', 2, p_now => $1)", [t0])
            try await f.sql("SELECT pgflow.acquire_concurrency_slots(ARRAY['db'], 1, interval '10 seconds', p_now => $1)", [t0])
            try await f.sql("SELECT pgflow.heartbeat($1, $2)", [healthy, t0.addingTimeInterval(100)])
            let reaper = Reaper(configuration: .init(), pool: f.pool, logger: f.logger)
            #expect(try await reaper.runOnce(now: t0.addingTimeInterval(5)) == .init(crashed: 0, expiredLeases: 0))
            #expect(try await reaper.runOnce(now: t0.addingTimeInterval(120)) == .init(crashed: 2, expiredLeases: 1))
            let runs = try await f.strings("""
                SELECT d.name || ' ' || r.state_name FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id ORDER BY 1
                """)
            #expect(runs == ["once Crashed", "retried AwaitingRetry"])
            let agents = try await f.strings("SELECT status FROM pgflow.agents ORDER BY id = $1 DESC", [agent])
            #expect(agents == ["OFFLINE", "ONLINE"])
            #expect(try await f.int("SELECT count(*)::int FROM pgflow.concurrency_slots") == 0, "slots released")
            #expect(try await reaper.runOnce(now: t0.addingTimeInterval(130)) == .init(crashed: 0, expiredLeases: 0))
        }
    }

    @Test func pausedRunsPastTheirTimeoutFail() async throws {
        try await Fixture.with { f in
            try await f.deployment("pz", "dep", at: t0)
            let agent = try await f.agent(at: t0)
            let run = try await f.sql("SELECT pgflow.run_deployment('pz/dep', p_now => $1)", [t0]).scalar(UUID.self)
            try await f.claimAll(agent: agent, at: t0)
            try await f.sql("SELECT pgflow.set_flow_run_state($1, 'PAUSED', p_pause_expires_at => $2, p_now => $3)",
                            [run, t0.addingTimeInterval(60), t0])
            let service = PauseExpiryService(pool: f.pool, logger: f.logger)
            #expect(try await service.runOnce(now: t0.addingTimeInterval(59)) == 0)
            #expect(try await service.runOnce(now: t0.addingTimeInterval(61)) == 1)
            #expect(try await f.strings("SELECT state_name FROM pgflow.flow_runs") == ["TimedOut"])
        }
    }

    @Test func retentionDeletesOnlyOldFinishedRunsInBatches() async throws {
        try await Fixture.with { f in
            try await f.deployment("rt", "dep", at: t0)
            let agent = try await f.agent(at: t0)
            for name in ["old1", "old2", "old3", "old4", "old5", "young", "running"] {
                try await f.sql("SELECT pgflow.run_deployment('rt/dep', p_flow_run_name => $1, p_now => $2)", [name, t0])
            }
            try await f.sql("SELECT pgflow.run_deployment('rt/dep', p_flow_run_name => 'old-but-queued', p_now => $1)", [t0])
            try await f.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1, NULL, 100, true, $2) WHERE flow_run_name <> 'old-but-queued'", [agent, t0])
            try await f.sql("SELECT pgflow.set_flow_run_state(id, 'COMPLETED', p_now => $1) FROM pgflow.flow_runs WHERE name LIKE 'old_'", [hours(1)])
            try await f.sql("SELECT pgflow.set_flow_run_state(id, 'FAILED', p_now => $1) FROM pgflow.flow_runs WHERE name = 'young'", [hours(24 * 20)])
            try await f.sql("SELECT pgflow.write_log(id, 20, 'hello', p_now => $1) FROM pgflow.flow_runs", [t0])
            var c = RetentionService.Configuration()
            c.maxAge = 30 * 86_400
            c.batchSize = 2
            let retention = RetentionService(configuration: c, pool: f.pool, logger: f.logger)
            #expect(try await retention.runOnce(now: hours(24 * 10)) == 0)
            #expect(try await retention.runOnce(now: hours(24 * 40)) == 5, "three batches of 2, 2 and 1")
            let left = try await f.strings("SELECT name FROM pgflow.flow_runs ORDER BY name")
            #expect(left == ["old-but-queued", "running", "young"])
            #expect(try await f.int("SELECT count(*)::int FROM pgflow.logs") == 3, "the deleted runs' logs went with them")
        }
    }
}

@Suite struct DueRunNotifierTests {
    @Test func queuesAreNotifiedWhenTheirRunsFallDue() async throws {
        try await Fixture.with { f in
            let due = instant("2030-01-01T00:00:00Z")
            try await f.deployment("nt", "dep", at: due)
            try await f.sql("SELECT pgflow.run_deployment('nt/dep', p_scheduled_time => $1, p_now => $2)", [due, due.addingTimeInterval(-60)])
            let notifier = DueRunNotifier(pool: f.pool, logger: f.logger)
            var events = PostgresListener.listen(configuration: f.db.configuration, channels: ["pgflow_runs"]).makeAsyncIterator()
            #expect(await events.next() == .listening)
            let before = try await notifier.runOnce(now: due.addingTimeInterval(-10))
            #expect(before == .init(notified: [], nextDue: due), "nothing is due yet; it sleeps until the run is")
            let at = try await notifier.runOnce(now: due.addingTimeInterval(0.01))
            #expect(at == .init(notified: ["default"], nextDue: nil))
            guard case .notification(channel: "pgflow_runs", payload: "default", _)? = await events.next() else {
                Issue.record("no NOTIFY on pgflow_runs")
                return
            }
            #expect(try await notifier.runOnce(now: due.addingTimeInterval(1)).notified == [], "each due run wakes its queue once")
        }
    }
}
