// Schedule materialisation against a real PostgreSQL, including two schedulers side by side.
import Foundation
import PGFlowClient
import PGFlowPostgres
import PGFlowSchedule
import PGFlowScheduler
import Testing

@Suite(.serialized) struct MaterializerTests {
    func materializer(_ f: Fixture, horizon: Double, pool: PostgresPool? = nil) -> ScheduleMaterializer {
        var c = ScheduleMaterializer.Configuration()
        c.window.horizon = horizon
        c.window.minRuns = 0
        c.batchSize = 3  // several batches per pass
        return ScheduleMaterializer(configuration: c, pool: pool ?? f.pool, logger: f.logger)
    }

    @Test func twoSchedulersForSixtySimulatedMinutesCreateEachRunExactlyOnce() async throws {
        try await Fixture.with { f in
            let t0 = instant("2030-03-31T00:31:00Z")  // Europe/Berlin springs forward at 01:00Z; no run in (t0 - 7 s, t0]
            let specs: [(String, String, String, String)] = [
                ("every5", "cron", "*/5 * * * *", "UTC"), ("seven", "interval", "7 minutes", "UTC"),
                ("rule", "rrule", "FREQ=MINUTELY;INTERVAL=10", "UTC"), ("berlin", "cron", "*/15 * * * *", "Europe/Berlin"),
                ("daily", "cron", "0 6 * * *", "America/New_York"),
            ]
            for (name, kind, expression, zone) in specs {
                try await f.deployment("sim", name, at: t0)
                try await f.schedule("sim/\(name)", kind, expression, zone: zone, anchor: t0.addingTimeInterval(30), at: t0)
            }
            let other = PostgresPool(configuration: f.db.configuration, maxConnections: 2)
            defer { other.close() }
            let a = materializer(f, horizon: 600)
            let b = materializer(f, horizon: 600, pool: other)
            let agent = try await f.agent(at: t0)
            var inserted = 0
            var deleted = 0
            for minute in 0..<60 {
                let now = t0.addingTimeInterval(Double(minute) * 60)
                // B's clock is 7 seconds behind A's; both pass at once
                async let ca = a.runOnce(now: now)
                async let cb = b.runOnce(now: now.addingTimeInterval(-7))
                let (x, y) = try await (ca, cb)
                inserted += x.inserted + y.inserted
                deleted += x.deleted + y.deleted
                try await f.claimAll(agent: agent, at: now)
            }
            // a schedule one scheduler holds, the other skips; a last pass by A alone settles its window
            let settle = try await a.runOnce(now: t0.addingTimeInterval(59 * 60))
            inserted += settle.inserted
            deleted += settle.deleted
            #expect(deleted == 0)
            let duplicates = try await f.int("""
                SELECT count(*)::int FROM (SELECT 1 FROM pgflow.flow_runs GROUP BY deployment_id, expected_start_time HAVING count(*) > 1) d
                """)
            #expect(duplicates == 0)
            let total = try await f.int("SELECT count(*)::int FROM pgflow.flow_runs")
            #expect(total == inserted, "every run was inserted once and never deleted and re-created")
            // the runs are exactly the schedules' times in (t0 - 7 s, last pass + horizon]
            var expected = 0
            for (name, kind, expression, zone) in specs {
                let anchor = t0.addingTimeInterval(30)
                let schedule = try kind == "interval"
                    ? Schedule.interval(IntervalSchedule(every: 420, anchor: anchor, timeZone: TimeZone(identifier: zone)!))
                    : Schedule(kind: kind, expression: expression, timeZone: zone, anchor: anchor)
                let want = schedule.dates(after: t0.addingTimeInterval(-7), until: t0.addingTimeInterval(59 * 60 + 600), limit: 1000)
                let have = try await f.sql("""
                    SELECT r.expected_start_time FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id
                     WHERE d.name = $1 ORDER BY 1
                    """, [name]).rows.map { try $0.decode(Date.self, at: 0) }
                #expect(have == want, "\(name)")
                expected += want.count
            }
            #expect(total == expected && expected > 30)
            let stillScheduled = try await f.int(
                "SELECT count(*)::int FROM pgflow.flow_runs WHERE state_type = 'SCHEDULED' AND expected_start_time <= $1",
                [t0.addingTimeInterval(59 * 60)])
            #expect(stillScheduled == 0, "every due run was claimed")
        }
    }

    @Test func aChangedScheduleReplacesItsFutureRunsButNotStartedOnes() async throws {
        try await Fixture.with { f in
            let t0 = instant("2030-01-01T00:00:00Z")
            try await f.deployment("ch", "hourly", at: t0)
            let id = try await f.schedule("ch/hourly", "cron", "0 * * * *", at: t0)
            let m = materializer(f, horizon: 6 * 3600)
            let first = try await m.runOnce(now: t0.addingTimeInterval(-1))
            #expect(first.inserted == 6 && first.deleted == 0)  // 00:00 … 05:00
            #expect(try await m.runOnce(now: t0.addingTimeInterval(-1)).changed == 0, "a second pass writes nothing")
            let agent = try await f.agent(at: t0)
            #expect(try await f.claimAll(agent: agent, at: t0).count == 1)
            try await f.sql("UPDATE pgflow.deployment_schedules SET cron = '30 * * * *' WHERE id = $1", [id])
            let second = try await m.runOnce(now: t0.addingTimeInterval(60))
            #expect(second.inserted == 6 && second.deleted == 5)  // 00:30 … 05:30 replace 01:00 … 05:00
            let minutes = try await f.strings(
                "SELECT DISTINCT to_char(expected_start_time AT TIME ZONE 'UTC', 'MI') || ' ' || state_type FROM pgflow.flow_runs ORDER BY 1")
            #expect(minutes == ["00 RUNNING", "30 SCHEDULED"])
            try await f.sql("SELECT pgflow.set_deployment_paused('ch/hourly', true)")
            let paused = try await m.runOnce(now: t0.addingTimeInterval(60))
            #expect(paused.inserted == 0 && paused.deleted == 6)
        }
    }

    @Test func anInvalidScheduleIsSkippedAndTheOthersGoOn() async throws {
        try await Fixture.with { f in
            let t0 = instant("2030-01-01T00:00:00Z")
            try await f.deployment("bad", "cron", at: t0)
            // SQL refuses it since 0003 (create_deployment_schedule validates like the parser); a row written
            // before that, or by hand, is still skipped by the scheduler
            try await f.sql(
                """
                INSERT INTO pgflow.deployment_schedules (deployment_id, kind, cron, created_at, updated_at)
                SELECT id, 'cron', '61 * * * *', $1, $1 FROM pgflow.deployments WHERE name = 'cron'
                """, [t0])
            try await f.deployment("bad", "fine", at: t0)
            try await f.schedule("bad/fine", "interval", "1 hour", anchor: t0, at: t0)
            let counts = try await materializer(f, horizon: 3 * 3600).runOnce(now: t0)
            #expect(counts.invalid == 1 && counts.inserted == 3 && counts.schedules == 2)
        }
    }
}
