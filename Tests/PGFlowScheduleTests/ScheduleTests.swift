// The umbrella Schedule: building one from the pgflow.yaml / SQL form and asking it for runs.

import Foundation
import Testing
@testable import PGFlowSchedule

@Test func cronKindEvaluatesInTheNamedZone() throws {
    let schedule = try Schedule(kind: "cron", expression: "30 2 * * *", timeZone: "Europe/Berlin")
    #expect(schedule.kind == .cron)
    #expect(schedule.timeZone == zone("Europe/Berlin"))
    #expect(schedule.nextDate(after: instant("2026-03-28T12:00:00+01:00")) == instant("2026-03-29T03:00:00+02:00"))
    #expect(schedule.dates(after: instant("2026-03-28T12:00:00+01:00"), until: instant("2026-03-31T00:00:00+02:00"), limit: 5)
        == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"].map(instant))
}

@Test func intervalKindDefaultsToLocalMidnightAnchor() throws {
    let schedule = try Schedule(kind: " Interval ", expression: "1d", timeZone: "America/New_York")
    #expect(schedule.kind == .interval)
    #expect(Schedule.defaultAnchor(in: zone("America/New_York")) == instant("2020-01-01T00:00:00-05:00"))
    #expect(schedule.nextDate(after: instant("2026-03-08T00:00:00-05:00")) == instant("2026-03-09T00:00:00-04:00"))
    let anchored = try Schedule(kind: "interval", expression: "15m", timeZone: "UTC", anchor: instant("2026-01-01T00:05:00Z"))
    #expect(anchored.dates(after: instant("2026-05-04T10:00:00Z"), until: instant("2026-05-04T10:40:00Z"), limit: 10)
        == ["2026-05-04T10:05:00Z", "2026-05-04T10:20:00Z", "2026-05-04T10:35:00Z"].map(instant))
}

@Test func rruleKindUsesAnchorOrItsOwnDtstart() throws {
    let anchored = try Schedule(kind: "RRULE", expression: "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17", timeZone: "Europe/Berlin")
    #expect(anchored.kind == .rrule)
    #expect(anchored.nextDate(after: instant("2026-01-01T00:00:00Z")) == instant("2026-01-30T17:00:00+01:00"))
    let own = try Schedule(kind: "rrule", expression: "DTSTART:20260105T083000Z\nRRULE:FREQ=DAILY;COUNT=2", timeZone: "UTC")
    #expect(own.dates(after: .distantPast, until: .distantFuture, limit: 5)
        == ["2026-01-05T08:30:00Z", "2026-01-06T08:30:00Z"].map(instant))
}

@Test func unknownKindAndZoneAreTypedOneLineErrors() {
    let kind = scheduleError { _ = try Schedule(kind: "weekly", expression: "x", timeZone: "UTC") }
    #expect(kind == .unknownKind("weekly"))
    #expect(kind?.description == "unknown schedule kind \"weekly\": use one of cron, interval, rrule")
    let timeZone = scheduleError { _ = try Schedule(kind: "cron", expression: "@daily", timeZone: "Europe/Berln") }
    #expect(timeZone == .unknownTimeZone("Europe/Berln"))
    #expect(timeZone?.description == "unknown time zone \"Europe/Berln\": use an IANA name such as \"UTC\" or \"Europe/Berlin\"")
    #expect(scheduleError { _ = try Schedule(kind: "cron", expression: "@daily", timeZone: "") } == .unknownTimeZone(""))
}

@Test func expressionErrorsPassThroughFromEachKind() {
    #expect(scheduleError { _ = try Schedule(kind: "cron", expression: "61 * * * *", timeZone: "UTC") }
        == .invalidCron(expression: "61 * * * *", reason: "minute 61 is out of range 0-59"))
    #expect(scheduleError { _ = try Schedule(kind: "interval", expression: "0", timeZone: "UTC") }
        == .invalidInterval(expression: "0", reason: "the interval must be a positive number of seconds"))
    #expect(scheduleError { _ = try Schedule(kind: "rrule", expression: "FREQ=SOMETIMES", timeZone: "UTC") }
        == .invalidRRule(rule: "FREQ=SOMETIMES", reason: "FREQ=SOMETIMES is not one of MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY"))
}

@Test func scheduleRoundTripsThroughCodable() throws {
    let schedules = [
        try Schedule(kind: "cron", expression: "*/15 9-17 * * MON-FRI", timeZone: "Europe/Berlin"),
        try Schedule(kind: "interval", expression: "1h30m", timeZone: "Asia/Kolkata"),
        try Schedule(kind: "rrule", expression: "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", timeZone: "America/New_York"),
    ]
    let after = instant("2026-05-04T10:07:00Z")
    for schedule in schedules {
        let decoded = try JSONDecoder().decode(Schedule.self, from: JSONEncoder().encode(schedule))
        #expect(decoded == schedule)
        #expect(decoded.nextDate(after: after) == schedule.nextDate(after: after))
        #expect(schedule.nextDate(after: after) != nil)
    }
}
