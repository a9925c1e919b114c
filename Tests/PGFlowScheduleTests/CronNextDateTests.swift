// Known answers for CronSchedule.nextDate. The plain cases were computed with python croniter 7.0
// and rechecked with an independent brute-force search over days (croniter alone is not trusted: it
// gets single-value ranges such as `4-4/5` wrong, and treats `*/10` day-of-month unlike Vixie cron);
// the DST cases by hand from the tz database (checked with python zoneinfo): Europe/Berlin springs
// forward 2026-03-29 02:00 CET -> 03:00 CEST and falls back 2026-10-25 03:00 CEST -> 02:00 CET;
// America/New_York springs forward 2026-03-08 02:00 EST -> 03:00 EDT and falls back 2026-11-01
// 02:00 EDT -> 01:00 EST.

import Foundation
import Testing
@testable import PGFlowSchedule

struct CronCase: Sendable, CustomTestStringConvertible {
    let expression: String
    let timeZone: String
    let after: String
    let expected: [String]
    let note: String

    var testDescription: String { "\(expression) in \(timeZone) after \(after): \(note)" }
}

let cronCases: [CronCase] = [
    CronCase(expression: "*/15 * * * *", timeZone: "UTC", after: "2026-05-04T10:07:00Z",
             expected: ["2026-05-04T10:15:00Z", "2026-05-04T10:30:00Z", "2026-05-04T10:45:00Z"], note: "step"),
    CronCase(expression: "0 9-17/2 * * MON-FRI", timeZone: "UTC", after: "2026-05-08T16:30:00Z",
             expected: ["2026-05-08T17:00:00Z", "2026-05-11T09:00:00Z", "2026-05-11T11:00:00Z"],
             note: "stepped range, weekday names, skips the weekend"),
    CronCase(expression: "0 0 1,15 * *", timeZone: "UTC", after: "2026-05-15T00:00:00Z",
             expected: ["2026-06-01T00:00:00Z", "2026-06-15T00:00:00Z", "2026-07-01T00:00:00Z"],
             note: "list; strictly after"),
    CronCase(expression: "30 4 * JAN,JUL *", timeZone: "UTC", after: "2026-02-01T00:00:00Z",
             expected: ["2026-07-01T04:30:00Z", "2026-07-02T04:30:00Z", "2026-07-03T04:30:00Z"],
             note: "month names skip to July"),
    CronCase(expression: "0 12 * * 7", timeZone: "UTC", after: "2026-05-04T00:00:00Z",
             expected: ["2026-05-10T12:00:00Z", "2026-05-17T12:00:00Z"], note: "7 is Sunday"),
    CronCase(expression: "0 12 * * 0", timeZone: "UTC", after: "2026-05-04T00:00:00Z",
             expected: ["2026-05-10T12:00:00Z", "2026-05-17T12:00:00Z"], note: "0 is Sunday"),
    CronCase(expression: "0 0 * * FRI-SUN", timeZone: "UTC", after: "2026-05-04T00:00:00Z",
             expected: ["2026-05-08T00:00:00Z", "2026-05-09T00:00:00Z", "2026-05-10T00:00:00Z", "2026-05-15T00:00:00Z"],
             note: "range ending in SUN"),
    CronCase(expression: "0 0 13 * FRI", timeZone: "UTC", after: "2026-05-01T00:00:00Z",
             expected: ["2026-05-08T00:00:00Z", "2026-05-13T00:00:00Z", "2026-05-15T00:00:00Z"],
             note: "Vixie OR: the 13th (a Wednesday) or any Friday"),
    CronCase(expression: "0 0 */10 * MON", timeZone: "UTC", after: "2026-05-01T00:00:00Z",
             expected: ["2026-05-11T00:00:00Z", "2026-06-01T00:00:00Z", "2026-08-31T00:00:00Z"],
             note: "Vixie: day-of-month starting with * is not restricted, so both must match"),
    CronCase(expression: "0 0 29 2 *", timeZone: "UTC", after: "2026-01-01T00:00:00Z",
             expected: ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"], note: "Feb 29 in leap years only"),
    CronCase(expression: "0 0 31 * *", timeZone: "UTC", after: "2026-04-01T00:00:00Z",
             expected: ["2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"],
             note: "skips 30-day months"),
    CronCase(expression: "10/20 * * * *", timeZone: "UTC", after: "2026-05-04T10:55:00Z",
             expected: ["2026-05-04T11:10:00Z", "2026-05-04T11:30:00Z", "2026-05-04T11:50:00Z"], note: "N/step"),
    CronCase(expression: "59 23 31 12 *", timeZone: "UTC", after: "2026-05-04T00:00:00Z",
             expected: ["2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"], note: "year rollover"),
    CronCase(expression: "5 4 * * SUN", timeZone: "Asia/Kolkata", after: "2026-05-04T00:00:00+05:30",
             expected: ["2026-05-10T04:05:00+05:30", "2026-05-17T04:05:00+05:30"], note: "half-hour offset"),
    CronCase(expression: "0 22 * * 1-5", timeZone: "America/New_York", after: "2026-05-08T22:00:00-04:00",
             expected: ["2026-05-11T22:00:00-04:00", "2026-05-12T22:00:00-04:00"], note: "local weekday, not UTC's"),
    CronCase(expression: "@yearly", timeZone: "UTC", after: "2026-05-04T00:00:00Z",
             expected: ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"], note: "alias"),
    CronCase(expression: "@weekly", timeZone: "UTC", after: "2026-05-04T00:00:00Z",
             expected: ["2026-05-10T00:00:00Z", "2026-05-17T00:00:00Z"], note: "alias: Sunday midnight"),
    CronCase(expression: "@monthly", timeZone: "Europe/Berlin", after: "2026-05-04T00:00:00+02:00",
             expected: ["2026-06-01T00:00:00+02:00", "2026-07-01T00:00:00+02:00"], note: "alias, local midnight"),
    CronCase(expression: "@daily", timeZone: "America/New_York", after: "2026-11-01T00:00:00-04:00",
             expected: ["2026-11-02T00:00:00-05:00"], note: "alias after fall back"),

    // Europe/Berlin spring forward (2026-03-29: 02:00-02:59 does not exist).
    CronCase(expression: "30 2 * * *", timeZone: "Europe/Berlin", after: "2026-03-28T12:00:00+01:00",
             expected: ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
             note: "time in the gap runs once at the first instant after it"),
    CronCase(expression: "0,30 2 * * *", timeZone: "Europe/Berlin", after: "2026-03-28T12:00:00+01:00",
             expected: ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"],
             note: "two times in the gap still run only once"),
    CronCase(expression: "*/15 * * * *", timeZone: "Europe/Berlin", after: "2026-03-29T01:30:00+01:00",
             expected: ["2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"],
             note: "every 15 real minutes through the gap"),
    CronCase(expression: "@hourly", timeZone: "Europe/Berlin", after: "2026-03-29T00:30:00+01:00",
             expected: ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
             note: "hourly through the gap"),
    // Europe/Berlin fall back (2026-10-25: 02:00-02:59 occurs twice).
    CronCase(expression: "30 2 * * *", timeZone: "Europe/Berlin", after: "2026-10-24T12:00:00+02:00",
             expected: ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
             note: "time in the overlap runs once, at the first occurrence"),
    CronCase(expression: "30 2 * * *", timeZone: "Europe/Berlin", after: "2026-10-25T02:10:00+01:00",
             expected: ["2026-10-26T02:30:00+01:00"], note: "not again in the second pass"),
    CronCase(expression: "*/15 2 * * *", timeZone: "Europe/Berlin", after: "2026-10-25T01:50:00+02:00",
             expected: ["2026-10-25T02:00:00+02:00", "2026-10-25T02:15:00+02:00", "2026-10-25T02:30:00+02:00",
                        "2026-10-25T02:45:00+02:00", "2026-10-26T02:00:00+01:00"],
             note: "wall-hour schedule: first pass only"),
    CronCase(expression: "*/15 * * * *", timeZone: "Europe/Berlin", after: "2026-10-25T02:30:00+02:00",
             expected: ["2026-10-25T02:45:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:15:00+01:00",
                        "2026-10-25T02:30:00+01:00", "2026-10-25T02:45:00+01:00", "2026-10-25T03:00:00+01:00"],
             note: "every 15 real minutes through the overlap"),
    CronCase(expression: "*/15 * * * *", timeZone: "Europe/Berlin", after: "2026-10-25T02:10:00+01:00",
             expected: ["2026-10-25T02:15:00+01:00"], note: "from inside the second pass"),
    // America/New_York.
    CronCase(expression: "0 2 * * *", timeZone: "America/New_York", after: "2026-03-07T12:00:00-05:00",
             expected: ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"], note: "spring forward"),
    CronCase(expression: "30 1 * * *", timeZone: "America/New_York", after: "2026-10-31T12:00:00-04:00",
             expected: ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"], note: "fall back, once"),
    CronCase(expression: "@hourly", timeZone: "America/New_York", after: "2026-11-01T00:30:00-04:00",
             expected: ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
             note: "hourly fires in both passes of the repeated hour"),
    CronCase(expression: "@hourly", timeZone: "America/New_York", after: "2026-03-08T01:30:00-05:00",
             expected: ["2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"], note: "hourly through the gap"),
    // Zones whose change is at midnight (America/Santiago) or half an hour (Australia/Lord_Howe).
    CronCase(expression: "0 0 * * *", timeZone: "America/Santiago", after: "2026-09-05T12:00:00-04:00",
             expected: ["2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"], note: "midnight does not exist"),
    CronCase(expression: "30 23 * * *", timeZone: "America/Santiago", after: "2026-04-04T12:00:00-03:00",
             expected: ["2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"], note: "23:30 occurs twice"),
    CronCase(expression: "15 2 * * *", timeZone: "Australia/Lord_Howe", after: "2026-10-03T12:00:00+10:30",
             expected: ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"], note: "30-minute gap"),
    CronCase(expression: "*/15 * * * *", timeZone: "Australia/Lord_Howe", after: "2026-10-04T01:50:00+10:30",
             expected: ["2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"], note: "15 real minutes over a 30-minute gap"),
    CronCase(expression: "*/15 * * * *", timeZone: "Australia/Lord_Howe", after: "2026-04-05T01:40:00+11:00",
             expected: ["2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T01:45:00+10:30",
                        "2026-04-05T02:00:00+10:30"], note: "30-minute overlap"),
]

@Test(arguments: cronCases)
func cronKnownAnswers(_ example: CronCase) throws {
    let cron = try CronSchedule(parsing: example.expression)
    let timeZone = zone(example.timeZone)
    let got = successive(example.expected.count, after: instant(example.after)) {
        cron.nextDate(after: $0, in: timeZone)
    }
    #expect(got == example.expected.map(instant))
}

@Test func cronDatesStopsAtUntilInclusiveAndLimit() throws {
    let cron = try CronSchedule(parsing: "0 * * * *")
    let utc = zone("UTC")
    let after = instant("2026-05-04T10:00:00Z")
    #expect(cron.dates(after: after, until: instant("2026-05-04T13:00:00Z"), limit: 10, in: utc)
        == ["2026-05-04T11:00:00Z", "2026-05-04T12:00:00Z", "2026-05-04T13:00:00Z"].map(instant))
    #expect(cron.dates(after: after, until: instant("2026-05-05T00:00:00Z"), limit: 2, in: utc)
        == ["2026-05-04T11:00:00Z", "2026-05-04T12:00:00Z"].map(instant))
    #expect(cron.dates(after: after, until: instant("2026-05-04T10:59:59Z"), limit: 10, in: utc).isEmpty)
    #expect(cron.dates(after: after, until: instant("2026-05-05T00:00:00Z"), limit: 0, in: utc).isEmpty)
}

@Test func cronNeverMatchingReturnsNil() throws {
    let cron = try CronSchedule(parsing: "0 0 30 2 *")
    #expect(cron.nextDate(after: instant("2026-01-01T00:00:00Z"), in: zone("UTC")) == nil)
}

@Test func cronFractionalSecondsCountAsAfter() throws {
    let cron = try CronSchedule(parsing: "* * * * *")
    let start = instant("2026-05-04T10:00:00Z")
    #expect(cron.nextDate(after: start.addingTimeInterval(0.5), in: zone("UTC")) == instant("2026-05-04T10:01:00Z"))
    #expect(cron.nextDate(after: start.addingTimeInterval(-0.5), in: zone("UTC")) == start)
}
