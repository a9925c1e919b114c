// Known answers for RRuleSchedule. Most are RFC 5545 section 3.8.5.3 examples (DTSTART
// 1997-09-02 09:00 America/New_York); all were computed with python-dateutil 2.9 rrulestr with an
// aware DTSTART, except the DST-gap case, which follows pgflow's rule (first instant after the gap).

import Foundation
import Testing
@testable import PGFlowSchedule

struct RRuleCase: Sendable, CustomTestStringConvertible {
    let rule: String
    let dtstart: String
    let timeZone: String
    let expected: [String]

    var testDescription: String { "\(rule) from \(dtstart) in \(timeZone)" }
}

let rfcStart = "1997-09-02T09:00:00-04:00"

let rruleCases: [RRuleCase] = [
    RRuleCase(rule: "FREQ=DAILY;COUNT=10", dtstart: rfcStart, timeZone: "America/New_York",
              expected: (2...11).map { String(format: "1997-09-%02dT09:00:00-04:00", $0) }),
    RRuleCase(rule: "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=TU,TH;COUNT=8", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1997-09-02T09:00:00-04:00", "1997-09-04T09:00:00-04:00", "1997-09-16T09:00:00-04:00",
                         "1997-09-18T09:00:00-04:00", "1997-09-30T09:00:00-04:00", "1997-10-02T09:00:00-04:00",
                         "1997-10-14T09:00:00-04:00", "1997-10-16T09:00:00-04:00"]),
    RRuleCase(rule: "FREQ=MONTHLY;COUNT=10;BYDAY=1FR", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1997-09-05T09:00:00-04:00", "1997-10-03T09:00:00-04:00", "1997-11-07T09:00:00-05:00",
                         "1997-12-05T09:00:00-05:00", "1998-01-02T09:00:00-05:00", "1998-02-06T09:00:00-05:00",
                         "1998-03-06T09:00:00-05:00", "1998-04-03T09:00:00-05:00", "1998-05-01T09:00:00-04:00",
                         "1998-06-05T09:00:00-04:00"]),
    RRuleCase(rule: "FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1997-09-07T09:00:00-04:00", "1997-09-28T09:00:00-04:00", "1997-11-02T09:00:00-05:00",
                         "1997-11-30T09:00:00-05:00", "1998-01-04T09:00:00-05:00", "1998-01-25T09:00:00-05:00",
                         "1998-03-01T09:00:00-05:00", "1998-03-29T09:00:00-05:00", "1998-05-03T09:00:00-04:00",
                         "1998-05-31T09:00:00-04:00"]),
    RRuleCase(rule: "FREQ=MONTHLY;BYMONTHDAY=-3;COUNT=6", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1997-09-28T09:00:00-04:00", "1997-10-29T09:00:00-05:00", "1997-11-28T09:00:00-05:00",
                         "1997-12-29T09:00:00-05:00", "1998-01-29T09:00:00-05:00", "1998-02-26T09:00:00-05:00"]),
    RRuleCase(rule: "FREQ=YEARLY;INTERVAL=2;BYMONTH=1;BYDAY=SU;BYHOUR=8,9;BYMINUTE=30;COUNT=12", dtstart: rfcStart,
              timeZone: "America/New_York",
              expected: ["1999-01-03T08:30:00-05:00", "1999-01-03T09:30:00-05:00", "1999-01-10T08:30:00-05:00",
                         "1999-01-10T09:30:00-05:00", "1999-01-17T08:30:00-05:00", "1999-01-17T09:30:00-05:00",
                         "1999-01-24T08:30:00-05:00", "1999-01-24T09:30:00-05:00", "1999-01-31T08:30:00-05:00",
                         "1999-01-31T09:30:00-05:00", "2001-01-07T08:30:00-05:00", "2001-01-07T09:30:00-05:00"]),
    RRuleCase(rule: "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13;COUNT=5", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1998-02-13T09:00:00-05:00", "1998-03-13T09:00:00-05:00", "1998-11-13T09:00:00-05:00",
                         "1999-08-13T09:00:00-04:00", "2000-10-13T09:00:00-04:00"]),
    RRuleCase(rule: "FREQ=YEARLY;BYDAY=20MO;COUNT=3", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1998-05-18T09:00:00-04:00", "1999-05-17T09:00:00-04:00", "2000-05-15T09:00:00-04:00"]),
    RRuleCase(rule: "FREQ=HOURLY;INTERVAL=3;UNTIL=19970902T170000", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1997-09-02T09:00:00-04:00", "1997-09-02T12:00:00-04:00", "1997-09-02T15:00:00-04:00"]),
    RRuleCase(rule: "FREQ=MINUTELY;INTERVAL=15;COUNT=6", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1997-09-02T09:00:00-04:00", "1997-09-02T09:15:00-04:00", "1997-09-02T09:30:00-04:00",
                         "1997-09-02T09:45:00-04:00", "1997-09-02T10:00:00-04:00", "1997-09-02T10:15:00-04:00"]),
    RRuleCase(rule: "FREQ=DAILY;INTERVAL=10;COUNT=5", dtstart: rfcStart, timeZone: "America/New_York",
              expected: ["1997-09-02T09:00:00-04:00", "1997-09-12T09:00:00-04:00", "1997-09-22T09:00:00-04:00",
                         "1997-10-02T09:00:00-04:00", "1997-10-12T09:00:00-04:00"]),
    RRuleCase(rule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU;COUNT=4", dtstart: "1997-08-05T09:00:00-04:00",
              timeZone: "America/New_York",
              expected: ["1997-08-17T09:00:00-04:00", "1997-08-18T09:00:00-04:00", "1997-08-31T09:00:00-04:00",
                         "1997-09-01T09:00:00-04:00"]),
    RRuleCase(rule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=MO;COUNT=4", dtstart: "1997-08-05T09:00:00-04:00",
              timeZone: "America/New_York",
              expected: ["1997-08-10T09:00:00-04:00", "1997-08-18T09:00:00-04:00", "1997-08-24T09:00:00-04:00",
                         "1997-09-01T09:00:00-04:00"]),
    RRuleCase(rule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=30;COUNT=10", dtstart: "2026-01-05T09:30:00+01:00",
              timeZone: "Europe/Berlin",
              expected: ["2026-01-05T09:30:00+01:00", "2026-01-07T09:30:00+01:00", "2026-01-19T09:30:00+01:00",
                         "2026-01-21T09:30:00+01:00", "2026-02-02T09:30:00+01:00", "2026-02-04T09:30:00+01:00",
                         "2026-02-16T09:30:00+01:00", "2026-02-18T09:30:00+01:00", "2026-03-02T09:30:00+01:00",
                         "2026-03-04T09:30:00+01:00"]),
    RRuleCase(rule: "FREQ=MONTHLY;BYDAY=-1FR;COUNT=6", dtstart: "2026-01-01T17:00:00+01:00", timeZone: "Europe/Berlin",
              expected: ["2026-01-30T17:00:00+01:00", "2026-02-27T17:00:00+01:00", "2026-03-27T17:00:00+01:00",
                         "2026-04-24T17:00:00+02:00", "2026-05-29T17:00:00+02:00", "2026-06-26T17:00:00+02:00"]),
    RRuleCase(rule: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=3", dtstart: "2026-01-01T00:00:00Z", timeZone: "UTC",
              expected: ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]),
    RRuleCase(rule: "FREQ=MONTHLY;BYMONTHDAY=31;COUNT=5", dtstart: "2026-01-31T12:00:00Z", timeZone: "UTC",
              expected: ["2026-01-31T12:00:00Z", "2026-03-31T12:00:00Z", "2026-05-31T12:00:00Z", "2026-07-31T12:00:00Z",
                         "2026-08-31T12:00:00Z"]),
    RRuleCase(rule: "FREQ=MINUTELY;INTERVAL=7;BYHOUR=9;BYMINUTE=0,7,14,21;COUNT=6", dtstart: "2026-01-05T08:00:00Z",
              timeZone: "UTC",
              expected: ["2026-01-07T09:00:00Z", "2026-01-07T09:07:00Z", "2026-01-07T09:14:00Z", "2026-01-07T09:21:00Z",
                         "2026-01-14T09:00:00Z", "2026-01-14T09:07:00Z"]),
    RRuleCase(rule: "FREQ=DAILY;BYMONTH=3;BYDAY=MO;COUNT=6", dtstart: "2026-01-01T10:00:00Z", timeZone: "UTC",
              expected: ["2026-03-02T10:00:00Z", "2026-03-09T10:00:00Z", "2026-03-16T10:00:00Z", "2026-03-23T10:00:00Z",
                         "2026-03-30T10:00:00Z", "2027-03-01T10:00:00Z"]),
    RRuleCase(rule: "FREQ=HOURLY;BYDAY=SA;BYHOUR=10,14;COUNT=4", dtstart: "2026-05-04T00:00:00Z", timeZone: "UTC",
              expected: ["2026-05-09T10:00:00Z", "2026-05-09T14:00:00Z", "2026-05-16T10:00:00Z", "2026-05-16T14:00:00Z"]),
    RRuleCase(rule: "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;BYHOUR=1;BYMINUTE=0;COUNT=3", dtstart: "2026-01-01T00:00:00Z",
              timeZone: "UTC", expected: ["2026-03-29T01:00:00Z", "2027-03-28T01:00:00Z", "2028-03-26T01:00:00Z"]),
    RRuleCase(rule: "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;COUNT=3", dtstart: "2026-10-31T09:00:00-04:00", timeZone: "America/New_York",
              expected: ["2026-10-31T09:00:00-04:00", "2026-11-01T09:00:00-05:00", "2026-11-02T09:00:00-05:00"]),
    RRuleCase(rule: "FREQ=DAILY;BYHOUR=2;BYMINUTE=30;COUNT=3", dtstart: "2026-03-28T00:00:00+01:00", timeZone: "Europe/Berlin",
              expected: ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
]

@Test(arguments: rruleCases)
func rruleKnownAnswers(_ example: RRuleCase) throws {
    let rule = try RRuleSchedule(parsing: example.rule, dtstart: instant(example.dtstart), timeZone: zone(example.timeZone))
    let everything = rule.dates(after: .distantPast, until: .distantFuture, limit: example.expected.count + 5)
    #expect(everything == example.expected.map(instant))
    let stepped = successive(example.expected.count + 1, after: instant(example.dtstart).addingTimeInterval(-1)) {
        rule.nextDate(after: $0)
    }
    #expect(stepped == example.expected.map(instant))
}

@Test func untilIsInclusiveAndUTC() throws {
    let rule = try RRuleSchedule(
        parsing: "FREQ=DAILY;UNTIL=19971224T000000Z", dtstart: instant(rfcStart), timeZone: zone("America/New_York"))
    let all = rule.dates(after: .distantPast, until: .distantFuture, limit: 500)
    #expect(all.count == 113)
    #expect(all.first == instant(rfcStart))
    #expect(all.last == instant("1997-12-23T09:00:00-05:00"))
    let exact = try RRuleSchedule(
        parsing: "FREQ=DAILY;UNTIL=19970904T130000Z", dtstart: instant(rfcStart), timeZone: zone("America/New_York"))
    #expect(exact.dates(after: .distantPast, until: .distantFuture, limit: 10).last == instant("1997-09-04T09:00:00-04:00"))
}

@Test func dateOnlyUntilIncludesThatWholeLocalDay() throws {
    let rule = try RRuleSchedule(
        parsing: "FREQ=DAILY;BYHOUR=23;BYMINUTE=30;UNTIL=20260103", dtstart: instant("2026-01-01T00:00:00+01:00"),
        timeZone: zone("Europe/Berlin"))
    #expect(rule.dates(after: .distantPast, until: .distantFuture, limit: 10)
        == ["2026-01-01T23:30:00+01:00", "2026-01-02T23:30:00+01:00", "2026-01-03T23:30:00+01:00"].map(instant))
}

@Test func countIsCountedFromDtstartEvenWhenAskedLater() throws {
    let rule = try RRuleSchedule(parsing: "FREQ=DAILY;COUNT=10", dtstart: instant(rfcStart), timeZone: zone("America/New_York"))
    #expect(rule.nextDate(after: instant("1997-09-08T12:00:00-04:00")) == instant("1997-09-09T09:00:00-04:00"))
    #expect(rule.nextDate(after: instant("1997-09-10T09:00:00-04:00")) == instant("1997-09-11T09:00:00-04:00"))
    #expect(rule.nextDate(after: instant("1997-09-11T09:00:00-04:00")) == nil)
    #expect(rule.dates(after: instant("1997-09-08T12:00:00-04:00"), until: .distantFuture, limit: 100).count == 3)
}

@Test func unboundedRuleJumpsStraightToADistantDate() throws {
    let rule = try RRuleSchedule(
        parsing: "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=30", dtstart: instant("2026-01-05T09:30:00+01:00"),
        timeZone: zone("Europe/Berlin"))
    #expect(successive(3, after: instant("2031-07-15T00:00:00+02:00"), rule.nextDate)
        == ["2031-07-16T09:30:00+02:00", "2031-07-21T09:30:00+02:00", "2031-07-23T09:30:00+02:00"].map(instant))
    let minutely = try RRuleSchedule(parsing: "FREQ=MINUTELY;INTERVAL=7", dtstart: instant("2026-01-01T00:00:00Z"))
    // 2036-01-01T00:00Z is 5,258,880 minutes later: 4 past a multiple of 7, so the next is 3 minutes on.
    #expect(minutely.nextDate(after: instant("2036-01-01T00:00:00Z")) == instant("2036-01-01T00:03:00Z"))
}

@Test func hourlyRuleAcrossFallBackFollowsWallClock() throws {
    // Wall-clock expansion: 01:00 EDT, 02:00 EST, 03:00 EST (the repeated 01:00 EST is not a new wall time).
    let rule = try RRuleSchedule(parsing: "FREQ=HOURLY;COUNT=4", dtstart: instant("2026-11-01T00:00:00-04:00"),
                                 timeZone: zone("America/New_York"))
    #expect(rule.dates(after: .distantPast, until: .distantFuture, limit: 10)
        == ["2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00",
            "2026-11-01T03:00:00-05:00"].map(instant))
}

@Test func neverMatchingRuleEndsInsteadOfLooping() throws {
    for text in ["FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31", "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30"] {
        let rule = try RRuleSchedule(parsing: text, dtstart: instant("2026-01-01T00:00:00Z"))
        #expect(rule.nextDate(after: instant("2026-01-01T00:00:00Z")) == nil, "\(text)")
    }
}
