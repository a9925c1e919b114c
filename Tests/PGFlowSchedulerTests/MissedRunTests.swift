// Missed runs after an outage longer than the materialisation window: every minute, the scheduler
// down for three simulated days, then up again. Each policy does what it says; run_all up to its cap.
import Foundation
import PGFlowClient
import PGFlowPostgres
import PGFlowSchedule
@testable import PGFlowScheduler
import Testing

@Suite struct MissedRunTests {
    let t0 = instant("2030-01-01T00:00:00Z")
    let cap = 50

    /// Materialiser and late-run service with the defaults a scheduler has, `maxMissedRuns` = cap.
    func services(_ f: Fixture) -> (ScheduleMaterializer, LateRunService) {
        var m = ScheduleMaterializer.Configuration()
        m.window.maxMissedRuns = cap
        return (ScheduleMaterializer(configuration: m, pool: f.pool, logger: f.logger),
                LateRunService(configuration: .init(), pool: f.pool, logger: f.logger))
    }

    /// Runs of the deployment scheduled at or before `now` that are still waiting (not cancelled).
    func waiting(_ f: Fixture, _ deployment: String, at now: Date) async throws -> Int {
        try await f.int("""
            SELECT count(*)::int FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id
             WHERE d.name = $1 AND r.expected_start_time <= $2 AND r.state_type = 'SCHEDULED'
            """, [deployment, now])
    }

    @Test(arguments: [MissedRunPolicy.runAll, .latest, .skip])
    func aThreeDayOutageThenUp(policy: MissedRunPolicy) async throws {
        try await Fixture.with { f in
            let (materializer, lateRuns) = services(f)
            try await f.deployment("etl", "minutely", at: t0)
            try await f.sql("SELECT pgflow.set_deployment_missed_run_policy('etl/minutely', $1, $2)", [policy.rawValue, t0])
            try await f.schedule("etl/minutely", "cron", "* * * * *", at: t0)
            let before = try await materializer.runOnce(now: t0)
            #expect(before.inserted == 100 && before.missed == 0, "the window: the next 100 minutes")

            let up = t0.addingTimeInterval(3 * 86_400 + 30)  // three days later, 30 s past a minute
            let after = try await materializer.runOnce(now: up)
            let expectedMissed = switch policy {
            case .runAll: cap
            case .latest: 1
            case .skip: 0
            }
            #expect(after.missed == expectedMissed, "\(policy): \(after)")
            #expect(after.inserted == expectedMissed + 100, "the missed ones and the next 100 minutes")
            let newest = try await f.sql("""
                SELECT max(expected_start_time) AS newest, min(expected_start_time) AS oldest FROM pgflow.flow_runs
                 WHERE expected_start_time > $1 AND expected_start_time <= $2
                """, [t0.addingTimeInterval(100 * 60), up]).first
            if expectedMissed > 0 {
                #expect(try newest?.decode(Date.self, "newest") == up.addingTimeInterval(-30), "the newest missed minute")
                #expect(try newest?.decode(Date.self, "oldest") == up.addingTimeInterval(-30 - Double(expectedMissed - 1) * 60))
            }
            _ = try await lateRuns.runOnce(now: up)
            let stillWaiting = try await waiting(f, "minutely", at: up)
            switch policy {
            case .runAll: #expect(stillWaiting == 100 + cap, "the 100 made before the outage and the \(cap) newest missed")
            case .latest: #expect(stillWaiting == 1, "only the latest")
            case .skip: #expect(stillWaiting == 0)
            }
            let again = try await materializer.runOnce(now: up.addingTimeInterval(5))
            #expect(again.missed == 0 && again.inserted == 0, "nothing is missed twice")
        }
    }

    @Test func aPausedDeploymentIsNoOutage() async throws {
        try await Fixture.with { f in
            let (materializer, _) = services(f)
            try await f.deployment("etl", "paused", at: t0)
            try await f.schedule("etl/paused", "cron", "* * * * *", at: t0)
            try await materializer.runOnce(now: t0)
            try await f.sql("SELECT pgflow.set_deployment_paused('etl/paused', true, $1)", [t0.addingTimeInterval(60)])
            try await materializer.runOnce(now: t0.addingTimeInterval(61))
            let resumed = t0.addingTimeInterval(3 * 86_400)
            try await f.sql("SELECT pgflow.set_deployment_paused('etl/paused', false, $1)", [resumed])
            let counts = try await materializer.runOnce(now: resumed.addingTimeInterval(1))
            #expect(counts.missed == 0, "runs not wanted while paused are not missed: \(counts)")
        }
    }

    @Test func missedTimesLookBackOnlyAsFarAsTheyMust() throws {
        let minutely = try Schedule(kind: "cron", expression: "* * * * *", timeZone: "UTC")
        let record = DeploymentScheduleRecord(id: UUID(), deploymentID: UUID(), kind: "cron", expression: "* * * * *", intervalSeconds: nil,
                                              anchorDate: nil, timeZone: "UTC", wantsRuns: true, lastRunTime: t0)
        var window = MaterializationWindow()
        window.maxMissedRuns = 3
        let now = t0.addingTimeInterval(365 * 86_400)  // a year down
        let times = SchedulePlan.missedTimes(minutely, record: record, policy: .runAll, now: now, window: window)
        #expect(times == [-120.0, -60, 0].map { now.addingTimeInterval($0) })
        #expect(SchedulePlan.missedTimes(minutely, record: record, policy: .latest, now: now, window: window) == [now])
        #expect(SchedulePlan.missedTimes(minutely, record: record, policy: .skip, now: now, window: window).isEmpty)
        let upToDate = DeploymentScheduleRecord(id: UUID(), deploymentID: UUID(), kind: "cron", expression: "* * * * *", intervalSeconds: nil,
                                                anchorDate: nil, timeZone: "UTC", wantsRuns: true, lastRunTime: now.addingTimeInterval(60))
        #expect(SchedulePlan.missedTimes(minutely, record: upToDate, policy: .runAll, now: now, window: window).isEmpty)
        let few = DeploymentScheduleRecord(id: UUID(), deploymentID: UUID(), kind: "cron", expression: "* * * * *", intervalSeconds: nil,
                                           anchorDate: nil, timeZone: "UTC", wantsRuns: true, lastRunTime: now.addingTimeInterval(-90))
        #expect(SchedulePlan.missedTimes(minutely, record: few, policy: .runAll, now: now, window: window).count == 2)
    }
}
