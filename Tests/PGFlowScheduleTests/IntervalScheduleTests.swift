// IntervalSchedule: anchor + k·interval, whole days keeping local wall-clock time across DST.
// Expected answers by hand; UTC equivalents checked with python zoneinfo.

import Foundation
import Testing
@testable import PGFlowSchedule

@Test func fixedIntervalIsInPhaseWithTheAnchor() throws {
    let schedule = try IntervalSchedule(every: 900, anchor: instant("2026-01-01T00:00:00Z"))
    #expect(schedule.nextDate(after: instant("2026-05-04T10:07:30Z")) == instant("2026-05-04T10:15:00Z"))
    #expect(schedule.nextDate(after: instant("2026-05-04T10:15:00Z")) == instant("2026-05-04T10:30:00Z"))
    #expect(schedule.nextDate(after: instant("2026-05-04T10:14:59Z")) == instant("2026-05-04T10:15:00Z"))
}

@Test func timesBeforeTheAnchorCountToo() throws {
    let schedule = try IntervalSchedule(every: 3600, anchor: instant("2026-01-01T00:05:00Z"))
    #expect(schedule.nextDate(after: instant("2025-12-31T22:30:00Z")) == instant("2025-12-31T23:05:00Z"))
    #expect(schedule.nextDate(after: instant("2025-12-31T23:05:00Z")) == instant("2026-01-01T00:05:00Z"))
}

@Test func fractionalAnchorAndIntervalStayExact() throws {
    let anchor = instant("2026-01-01T00:00:00Z").addingTimeInterval(0.25)
    let schedule = try IntervalSchedule(every: 0.5, anchor: anchor)
    #expect(schedule.nextDate(after: anchor) == anchor.addingTimeInterval(0.5))
    #expect(schedule.nextDate(after: anchor.addingTimeInterval(10.3)) == anchor.addingTimeInterval(10.5))
}

@Test func subDayIntervalsAreFixedSecondsAcrossDST() throws {
    let berlin = zone("Europe/Berlin")
    let schedule = try IntervalSchedule(every: 12 * 3600, anchor: instant("2026-03-28T09:00:00+01:00"), timeZone: berlin)
    #expect(!schedule.keepsWallClockTime)
    #expect(schedule.dates(after: instant("2026-03-28T09:00:00+01:00"), until: instant("2026-03-30T00:00:00+02:00"), limit: 10)
        == ["2026-03-28T21:00:00+01:00", "2026-03-29T10:00:00+02:00", "2026-03-29T22:00:00+02:00"].map(instant))
}

@Test func dailyIntervalKeepsWallClockTimeAcrossDST() throws {
    let berlin = try IntervalSchedule(every: 86_400, anchor: instant("2026-03-27T09:00:00+01:00"), timeZone: zone("Europe/Berlin"))
    #expect(berlin.keepsWallClockTime)
    #expect(successive(3, after: instant("2026-03-27T09:00:00+01:00"), berlin.nextDate)
        == ["2026-03-28T09:00:00+01:00", "2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00"].map(instant))
    #expect(berlin.nextDate(after: instant("2026-10-25T06:00:00Z")) == instant("2026-10-25T09:00:00+01:00"))
}

@Test func weeklyIntervalKeepsWallClockTimeAcrossFallBack() throws {
    let newYork = try IntervalSchedule(
        every: 7 * 86_400, anchor: instant("2026-10-26T09:00:00-04:00"), timeZone: zone("America/New_York"))
    #expect(newYork.nextDate(after: instant("2026-10-26T09:00:00-04:00")) == instant("2026-11-02T09:00:00-05:00"))
    #expect(newYork.nextDate(after: instant("2026-10-20T00:00:00-04:00")) == instant("2026-10-26T09:00:00-04:00"))
}

@Test func dailyIntervalInTheGapAndOverlapRunsOnce() throws {
    let berlin = zone("Europe/Berlin")
    let spring = try IntervalSchedule(every: 86_400, anchor: instant("2026-03-28T02:30:00+01:00"), timeZone: berlin)
    #expect(successive(2, after: instant("2026-03-28T02:30:00+01:00"), spring.nextDate)
        == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"].map(instant))
    let fall = try IntervalSchedule(every: 86_400, anchor: instant("2026-10-24T02:30:00+02:00"), timeZone: berlin)
    #expect(successive(2, after: instant("2026-10-24T02:30:00+02:00"), fall.nextDate)
        == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"].map(instant))
}

@Test func intervalDatesRespectUntilAndLimit() throws {
    let schedule = try IntervalSchedule(every: 60, anchor: instant("2026-01-01T00:00:00Z"))
    let after = instant("2026-01-01T00:00:00Z")
    #expect(schedule.dates(after: after, until: instant("2026-01-01T00:03:00Z"), limit: 10).count == 3)
    #expect(schedule.dates(after: after, until: instant("2026-01-01T01:00:00Z"), limit: 5).count == 5)
}

@Test(arguments: [0.0, -5, .nan, .infinity])
func nonPositiveIntervalsAreRejected(_ seconds: TimeInterval) {
    let error = scheduleError { _ = try IntervalSchedule(every: seconds, anchor: Date()) }
    #expect(error == .invalidInterval(expression: "\(seconds)", reason: "the interval must be a positive number of seconds"))
}

@Test(arguments: [("3600", 3600.0), ("0.5", 0.5), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("1d", 86_400),
                  ("2d12h", 216_000), (" 1H ", 3600)])
func intervalTextParses(_ text: String, _ seconds: TimeInterval) throws {
    #expect(try IntervalSchedule(parsing: text, anchor: Date()).interval == seconds)
}

@Test(arguments: [
    ("abc", "write seconds (3600) or whole units d, h, m, s in that order (1h30m, 1d)"),
    ("30m1h", "write seconds (3600) or whole units d, h, m, s in that order (1h30m, 1d)"),
    ("10", nil), ("1h30", "write seconds (3600) or whole units d, h, m, s in that order (1h30m, 1d)"),
    ("", "write seconds (3600) or whole units d, h, m, s in that order (1h30m, 1d)"),
    ("0", "the interval must be a positive number of seconds"),
    ("-3", "the interval must be a positive number of seconds"),
    ("0m", "the interval must be a positive number of seconds"),
])
func intervalTextErrors(_ text: String, _ reason: String?) {
    let error = scheduleError { _ = try IntervalSchedule(parsing: text, anchor: Date()) }
    #expect(error == reason.map { .invalidInterval(expression: text, reason: $0) })
    if let reason { #expect(error?.description == "invalid interval \"\(text)\": \(reason)") }
}

@Test func intervalRoundTripsThroughCodableAndValidates() throws {
    let schedule = try IntervalSchedule(every: 86_400, anchor: instant("2026-03-27T09:00:00+01:00"), timeZone: zone("Europe/Berlin"))
    let data = try JSONEncoder().encode(schedule)
    #expect(try JSONDecoder().decode(IntervalSchedule.self, from: data) == schedule)
    let text = String(decoding: data, as: UTF8.self)
    #expect(text.contains(#""interval":86400"#))
    let bad = Data(text.replacingOccurrences(of: #""interval":86400"#, with: #""interval":0"#).utf8)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(IntervalSchedule.self, from: bad) }
}
