// The materialiser's decision, without a database.
import Foundation
import PGFlowClient
import PGFlowSchedule
@testable import PGFlowScheduler
import Testing

@Suite struct SchedulePlanTests {
    let t0 = instant("2030-01-01T00:00:00Z")
    let hourly = try! Schedule(kind: "cron", expression: "0 * * * *", timeZone: "UTC")
    let scheduleID = UUID()
    var window: MaterializationWindow {
        var w = MaterializationWindow()
        w.horizon = 3 * 3600
        return w
    }

    func existing(_ hours: [Int], replaceable: Bool = true, schedule: UUID? = nil) -> [ScheduledRunTime] {
        hours.map { ScheduledRunTime(scheduleID: schedule ?? scheduleID, time: t0.addingTimeInterval(Double($0) * 3600), replaceable: replaceable) }
    }

    func record(wantsRuns: Bool = true) -> DeploymentScheduleRecord {
        DeploymentScheduleRecord(id: scheduleID, deploymentID: UUID(), kind: "cron", expression: "0 * * * *",
                                 intervalSeconds: nil, anchorDate: nil, timeZone: "UTC", wantsRuns: wantsRuns)
    }

    @Test func anEmptyDeploymentGetsTheWindow() {
        let times = SchedulePlan.times(schedule: hourly, record: record(), existing: [], now: t0, window: window)
        #expect(times == [1, 2, 3].map { t0.addingTimeInterval(Double($0) * 3600) })
    }

    @Test func nothingIsWrittenWhenTheRunsAreThere() {
        #expect(SchedulePlan.times(schedule: hourly, record: record(), existing: existing([1, 2, 3]), now: t0, window: window) == nil)
        // a run that already started (not replaceable) or one another schedule made counts as there
        let mixed = existing([1], replaceable: false) + existing([2], schedule: UUID()) + existing([3])
        #expect(SchedulePlan.times(schedule: hourly, record: record(), existing: mixed, now: t0, window: window) == nil)
    }

    @Test func aLaggingSchedulerKeepsTheRunsOfOneAhead() {
        // another scheduler, an hour ahead, made 4 and 5 already: they stay in the list, so nothing is deleted
        let times = SchedulePlan.times(schedule: hourly, record: record(), existing: existing([2, 3, 4, 5]), now: t0, window: window)
        #expect(times == [1, 2, 3, 4, 5].map { t0.addingTimeInterval(Double($0) * 3600) })
    }

    @Test func aChangedScheduleDropsTimesThatAreNoLongerOccurrences() throws {
        let halfPast = try Schedule(kind: "cron", expression: "30 * * * *", timeZone: "UTC")
        let times = try #require(SchedulePlan.times(schedule: halfPast, record: record(), existing: existing([1, 2, 3]), now: t0, window: window))
        #expect(times == [0.5, 1.5, 2.5].map { t0.addingTimeInterval($0 * 3600) })
    }

    @Test func aPausedOrInactiveScheduleWantsNothing() {
        #expect(SchedulePlan.times(schedule: nil, record: record(wantsRuns: false), existing: existing([1, 2]), now: t0, window: window) == [])
        #expect(SchedulePlan.times(schedule: nil, record: record(wantsRuns: false), existing: [], now: t0, window: window) == nil)
    }

    @Test func rareSchedulesStillGetTheMinimumCount() throws {
        let yearly = try Schedule(kind: "cron", expression: "0 0 1 1 *", timeZone: "UTC")
        var w = window
        w.maxHorizon = 4 * 366 * 86_400
        let times = SchedulePlan.wantedTimes(yearly, now: t0, window: w)
        #expect(times == ["2031", "2032", "2033"].map { instant("\($0)-01-01T00:00:00Z") })
    }

    @Test func badSettingsSayWhatToDo() {
        var w = MaterializationWindow()
        w.minRuns = 200
        #expect(throws: SchedulerConfigurationError.self) { try w.validate() }
        var c = LateRunService.Configuration()
        c.lateThreshold = 0
        #expect(throws: SchedulerConfigurationError("the late-run threshold must be a positive number of seconds, got 0.0")) { try c.validate() }
    }
}
