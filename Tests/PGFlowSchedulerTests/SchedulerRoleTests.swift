// The scheduler's services connected as pgflow_scheduler (docs/security.md): everything it does works
// with that role's grants alone.
import Foundation
import PGFlowPostgres
import PGFlowScheduler
import Testing

@Suite struct SchedulerRoleTests {
    @Test func everyServiceRunsAsPgflowScheduler() async throws {
        try await Fixture.with { f in
            let t0 = instant("2030-01-01T00:00:00Z")
            try await f.deployment("role", "hourly", at: t0)
            try await f.schedule("role/hourly", "cron", "0 * * * *", at: t0)
            // every session of this pool runs as the role (libpq's options: SET ROLE at connection start)
            let asScheduler = PostgresConfiguration(f.db.conninfo + " options='-c role=pgflow_scheduler'")
            let pool = PostgresPool(configuration: asScheduler, maxConnections: 2)
            defer { pool.close() }
            #expect(try await pool.query("SELECT current_user::text").scalar(String.self) == "pgflow_scheduler")

            var c = ScheduleMaterializer.Configuration()
            c.window.horizon = 3 * 3600
            c.window.minRuns = 0
            let materialised = try await ScheduleMaterializer(configuration: c, pool: pool, logger: f.logger).runOnce(now: t0)
            #expect(materialised.inserted == 3 && materialised.schedules == 1)

            let later = t0.addingTimeInterval(2.5 * 3600)
            _ = try await LateRunService(pool: pool, logger: f.logger).runOnce(now: later)
            _ = try await Reaper(pool: pool, logger: f.logger).runOnce(now: later)
            _ = try await PauseExpiryService(pool: pool, logger: f.logger).runOnce(now: later)
            _ = try await RetentionService(pool: pool, logger: f.logger).runOnce(now: later)
            _ = try await DueRunNotifier(pool: pool, logger: f.logger).runOnce(now: later)
            #expect(try await f.int("SELECT count(*) FROM pgflow.flow_runs WHERE state_name = 'Late'") == 2,
                    "the two runs due before 02:30 are Late")
        }
    }
}
