// Parsing RRULE text: DTSTART/RRULE lines, and the one-line error for each mistake.
// Expected dates for the DTSTART forms were computed with python-dateutil rrulestr.

import Foundation
import Testing
@testable import PGFlowSchedule

@Test func dtstartLineWithTZIDSetsStartAndZone() throws {
    let rule = try RRuleSchedule(
        parsing: "DTSTART;TZID=Europe/Berlin:20260105T093000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=4",
        dtstart: instant("2000-01-01T00:00:00Z"), timeZone: zone("UTC"))
    #expect(rule.timeZone == zone("Europe/Berlin"))
    #expect(rule.dtstart == instant("2026-01-05T09:30:00+01:00"))
    #expect(rule.frequency == .weekly && rule.interval == 2 && rule.count == 4 && rule.until == nil)
    #expect(rule.dates(after: .distantPast, until: .distantFuture, limit: 10)
        == ["2026-01-05T09:30:00+01:00", "2026-01-07T09:30:00+01:00", "2026-01-19T09:30:00+01:00",
            "2026-01-21T09:30:00+01:00"].map(instant))
}

@Test(arguments: [
    ("DTSTART:20260105T083000Z\r\nRRULE:FREQ=DAILY;COUNT=2", "UTC", ["2026-01-05T08:30:00Z", "2026-01-06T08:30:00Z"]),
    ("DTSTART:20260105T083000Z\nRRULE:FREQ=DAILY;COUNT=2", "Europe/Berlin",
     ["2026-01-05T09:30:00+01:00", "2026-01-06T09:30:00+01:00"]),
    ("DTSTART:20260105T083000\nFREQ=DAILY;COUNT=2", "Europe/Berlin",
     ["2026-01-05T08:30:00+01:00", "2026-01-06T08:30:00+01:00"]),
    ("DTSTART;VALUE=DATE:20260105\nRRULE:FREQ=DAILY;COUNT=2", "America/New_York",
     ["2026-01-05T00:00:00-05:00", "2026-01-06T00:00:00-05:00"]),
    ("  rrule:freq=daily;count=2  ", "UTC", ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]),
])
func dtstartAndRRuleLineForms(_ text: String, _ timeZone: String, _ expected: [String]) throws {
    let rule = try RRuleSchedule(parsing: text, dtstart: instant("2026-01-01T00:00:00Z"), timeZone: zone(timeZone))
    #expect(rule.dates(after: .distantPast, until: .distantFuture, limit: 10) == expected.map(instant))
}

@Test(arguments: [
    ("FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY is not one of MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY"),
    ("INTERVAL=2", "FREQ is required (MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY)"),
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL=0 must be a whole number of at least 1"),
    ("FREQ=DAILY;COUNT=x", "COUNT=X must be a whole number of at least 1"),
    ("FREQ=DAILY;BYHOUR=24", "BYHOUR value 24 is out of range 0-23"),
    ("FREQ=DAILY;BYMINUTE=60", "BYMINUTE value 60 is out of range 0-59"),
    ("FREQ=DAILY;BYMINUTE=1,,2", "BYMINUTE value \"\" is not a whole number"),
    ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY value 32 is out of range 1-31 or -31--1"),
    ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY value 0 is out of range 1-31 or -31--1"),
    ("FREQ=YEARLY;BYMONTH=13", "BYMONTH value 13 is out of range 1-12"),
    ("FREQ=WEEKLY;BYDAY=XX",
     "BYDAY value \"XX\" is not a weekday (MO, TU, WE, TH, FR, SA, SU) with an optional number (1MO, -1FR)"),
    ("FREQ=MONTHLY;BYDAY=0MO",
     "BYDAY value \"0MO\" is not a weekday (MO, TU, WE, TH, FR, SA, SU) with an optional number (1MO, -1FR)"),
    ("FREQ=WEEKLY;BYDAY=1MO", "BYDAY with a number (like 1MO or -1FR) needs FREQ=MONTHLY or FREQ=YEARLY"),
    ("FREQ=MONTHLY;BYDAY=6MO", "BYDAY ordinal 6 is out of range 1-5 or -5--1 for FREQ=MONTHLY"),
    ("FREQ=YEARLY;BYDAY=-54FR", "BYDAY ordinal -54 is out of range 1-53 or -53--1 for FREQ=YEARLY"),
    ("FREQ=DAILY;WKST=XX", "WKST=XX is not one of MO, TU, WE, TH, FR, SA, SU"),
    ("FREQ=MONTHLY;BYSETPOS=-1", "BYSETPOS is not supported; supported parts: \(RRuleParser.supportedParts)"),
    ("FREQ=DAILY;FOO=1", "unknown part FOO; supported parts: \(RRuleParser.supportedParts)"),
    ("FREQ=DAILY;COUNT=3;UNTIL=20260101", "COUNT and UNTIL cannot both be given"),
    ("FREQ=DAILY;UNTIL=2026-01-01", "UNTIL=2026-01-01 is not a date (20261231) or date-time (20261231T235959Z)"),
    ("FREQ=DAILY;UNTIL=20260230", "UNTIL=20260230 is not a date (20261231) or date-time (20261231T235959Z)"),
    ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"),
    ("FREQ", "FREQ is not NAME=VALUE"),
    ("", "no rule; write FREQ=...;... (e.g. FREQ=DAILY;BYHOUR=9)"),
    ("RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY", "only one RRULE line is supported"),
    ("EXDATE:20260101T000000Z\nRRULE:FREQ=DAILY", "EXDATE lines are not supported; give a DTSTART line and an RRULE line"),
    ("DTSTART:2026\nRRULE:FREQ=DAILY",
     "DTSTART 2026 is not a date (20260105) or date-time (20260105T090000, 20260105T090000Z)"),
    ("DTSTART;X-FOO=1:20260101\nRRULE:FREQ=DAILY", "DTSTART parameter X-FOO=1 is not supported; use TZID=zone"),
])
func rruleErrorsNameTheBadPart(_ text: String, _ reason: String) {
    let error = scheduleError { _ = try RRuleSchedule(parsing: text, dtstart: Date()) }
    #expect(error == .invalidRRule(rule: text, reason: reason))
    #expect(error?.description.contains("\n") == false)
    #expect(error?.description.hasSuffix(": " + reason) == true)
}

@Test func multiLineRuleErrorPrintsOnOneLine() {
    let error = scheduleError { _ = try RRuleSchedule(parsing: "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY;BYHOUR=25") }
    #expect(error?.description
        == "invalid rrule \"DTSTART:20260101T000000Z RRULE:FREQ=DAILY;BYHOUR=25\": BYHOUR value 25 is out of range 0-23")
}

@Test func unknownTZIDIsAnUnknownTimeZone() {
    let error = scheduleError { _ = try RRuleSchedule(parsing: "DTSTART;TZID=Mars/Olympus:20260101T000000\nRRULE:FREQ=DAILY") }
    #expect(error == .unknownTimeZone("Mars/Olympus"))
    #expect(error?.description == "unknown time zone \"Mars/Olympus\": use an IANA name such as \"UTC\" or \"Europe/Berlin\"")
}

@Test func ruleWithoutAnyStartIsRejected() {
    let error = scheduleError { _ = try RRuleSchedule(parsing: "FREQ=DAILY") }
    #expect(error == .invalidRRule(
        rule: "FREQ=DAILY", reason: "no start; add a DTSTART line (DTSTART:20260105T090000Z) or pass dtstart"))
}

@Test func rruleRoundTripsThroughCodable() throws {
    let rule = try RRuleSchedule(
        parsing: "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0", dtstart: instant("2026-01-01T00:00:00+01:00"),
        timeZone: zone("Europe/Berlin"))
    let decoded = try JSONDecoder().decode(RRuleSchedule.self, from: JSONEncoder().encode(rule))
    #expect(decoded == rule)
    #expect(decoded.nextDate(after: instant("2026-01-01T00:00:00Z")) == instant("2026-01-30T17:00:00+01:00"))
}
