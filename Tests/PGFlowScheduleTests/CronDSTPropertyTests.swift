// Whole-day and whole-year checks around DST: for schedules that follow real time the spacing
// between runs must be exact, and wall-hour schedules must run exactly once per local day.

import Foundation
import Testing
@testable import PGFlowSchedule

/// The days with a DST change in 2026, as (zone, local midnight that starts the day before).
let transitionWindows: [(String, String)] = [
    ("Europe/Berlin", "2026-03-28T00:00:00+01:00"), ("Europe/Berlin", "2026-10-24T00:00:00+02:00"),
    ("America/New_York", "2026-03-07T00:00:00-05:00"), ("America/New_York", "2026-10-31T00:00:00-04:00"),
]

@Test(arguments: [("*/15 * * * *", 900.0), ("@hourly", 3600.0), ("*/20 * * * *", 1200.0), ("* * * * *", 60.0)])
func realTimeSchedulesKeepExactSpacingThroughTransitions(_ expression: String, _ spacing: TimeInterval) throws {
    let cron = try CronSchedule(parsing: expression)
    for (name, start) in transitionWindows {
        let from = instant(start)
        let runs = cron.dates(after: from, until: from.addingTimeInterval(3 * 86_400), limit: 10_000, in: zone(name))
        #expect(runs.count == Int(3 * 86_400 / spacing), "\(expression) in \(name) from \(start)")
        for (earlier, later) in zip(runs, runs.dropFirst()) where later.timeIntervalSince(earlier) != spacing {
            Issue.record("\(expression) in \(name): \(earlier) -> \(later) is not \(spacing)s")
        }
    }
}

@Test(arguments: ["30 2 * * *", "0 2 * * *", "59 1 * * *", "0 3 * * *", "45 2 * * *"])
func wallHourScheduleRunsOncePerLocalDay(_ expression: String) throws {
    let cron = try CronSchedule(parsing: expression)
    for name in ["Europe/Berlin", "America/New_York"] {
        let timeZone = zone(name)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let from = calendar.date(from: DateComponents(year: 2026, month: 1, day: 1))!
        let until = calendar.date(from: DateComponents(year: 2027, month: 1, day: 1))!
        let runs = cron.dates(after: from, until: until, limit: 1000, in: timeZone)
        let days = Set(runs.map { calendar.dateComponents([.year, .month, .day], from: $0) })
        #expect(runs.count == 365, "\(expression) in \(name)")
        #expect(days.count == 365, "\(expression) in \(name): one run on each local day")
        #expect(zip(runs, runs.dropFirst()).allSatisfy { $0 < $1 })
    }
}

@Test func nextDateJustBeforeEachRunFindsThatRun() throws {
    for expression in ["*/15 * * * *", "30 2 * * *", "*/15 2 * * *", "@hourly", "0 1-3 * * *"] {
        let cron = try CronSchedule(parsing: expression)
        for (name, start) in transitionWindows {
            let timeZone = zone(name)
            let from = instant(start)
            let runs = cron.dates(after: from, until: from.addingTimeInterval(3 * 86_400), limit: 1000, in: timeZone)
            #expect(!runs.isEmpty)
            for run in runs {
                #expect(cron.nextDate(after: run.addingTimeInterval(-1), in: timeZone) == run,
                        "\(expression) in \(name) just before \(run)")
                #expect(cron.nextDate(after: run.addingTimeInterval(-0.001), in: timeZone) == run)
            }
        }
    }
}

@Test func wallHourRangeThroughFallBackRunsEachWallTimeOnce() throws {
    // 0 1-3: 01:00 CEST, 02:00 CEST (first pass only), 03:00 CET.
    let cron = try CronSchedule(parsing: "0 1-3 * * *")
    let runs = cron.dates(
        after: instant("2026-10-25T00:00:00+02:00"), until: instant("2026-10-25T12:00:00+01:00"), limit: 10,
        in: zone("Europe/Berlin"))
    #expect(runs == ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"].map(instant))
}

/// Many schedules across zones and a DST weekend all find their next dates. (How fast: the scheduler
/// benchmark, scripts/bench-scheduler.sh, not a timed test.)
@Test func tenThousandSchedulesEachFindThreeNextDates() throws {
    let expressions = ["*/15 * * * *", "30 2 * * *", "0 9-17 * * MON-FRI", "0 0 1 * *", "0 0 29 2 *", "5 4 * * SUN",
                       "0 0 13 * FRI", "@hourly", "0 12 * JAN,JUL 1-5", "*/7 3 * * *"]
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"].map(zone)
    let schedules = try (0..<10_000).map { index in
        (try CronSchedule(parsing: expressions[index % expressions.count]), zones[index % zones.count])
    }
    let start = instant("2026-03-28T23:59:30Z")
    var found = 0
    for (cron, timeZone) in schedules {
        let dates = successive(3, after: start) { cron.nextDate(after: $0, in: timeZone) }
        #expect(zip(dates, dates.dropFirst()).allSatisfy { $0 < $1 } && dates.first.map { $0 > start } == true)
        found += dates.count
    }
    #expect(found == 30_000)
}
