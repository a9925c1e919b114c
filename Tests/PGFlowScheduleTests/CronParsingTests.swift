// Parsing cron expressions: what each field accepts, and the one-line error for each mistake.

import Foundation
import Testing
@testable import PGFlowSchedule

/// The members of a field set, ascending.
func members(_ set: FieldSet) -> [Int] { (0..<64).filter(set.contains) }

@Test func fieldsParseListsRangesStepsAndNames() throws {
    let cron = try CronSchedule(parsing: "*/15 9-17/2 1,15,31 jan-mar,Dec MON-FRI")
    #expect(members(cron.minutes) == [0, 15, 30, 45])
    #expect(members(cron.hours) == [9, 11, 13, 15, 17])
    #expect(members(cron.daysOfMonth) == [1, 15, 31])
    #expect(members(cron.months) == [1, 2, 3, 12])
    #expect(members(cron.daysOfWeek) == [1, 2, 3, 4, 5])
    #expect(cron.restrictsDayOfMonth && cron.restrictsDayOfWeek)
}

@Test(arguments: [
    ("* * * * 7", [0]), ("* * * * 0,7", [0]), ("* * * * SAT-SUN", [0, 6]), ("* * * * FRI-7", [0, 5, 6]),
    ("* * * * 5-0", [0, 5, 6]), ("* * * * 0-7", [0, 1, 2, 3, 4, 5, 6]), ("* * * * */2", [0, 2, 4, 6]),
    ("* * * * 1/2", [1, 3, 5]), ("* * * * *", [0, 1, 2, 3, 4, 5, 6]),
])
func dayOfWeekSundayIsZeroAndSeven(_ expression: String, _ expected: [Int]) throws {
    #expect(members(try CronSchedule(parsing: expression).daysOfWeek) == expected)
}

@Test func aliasesExpandToTheirFiveFields() throws {
    let expansions = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    for (alias, fields) in expansions {
        let aliased = try CronSchedule(parsing: alias.uppercased())
        let written = try CronSchedule(parsing: fields)
        #expect(aliased.expression == alias.uppercased())
        #expect(aliased.minutes == written.minutes && aliased.hours == written.hours, "\(alias)")
        #expect(aliased.daysOfMonth == written.daysOfMonth && aliased.months == written.months, "\(alias)")
        #expect(aliased.daysOfWeek == written.daysOfWeek, "\(alias)")
        #expect(aliased.restrictsDayOfMonth == written.restrictsDayOfMonth, "\(alias)")
        #expect(aliased.restrictsDayOfWeek == written.restrictsDayOfWeek, "\(alias)")
    }
}

@Test func vixieRestrictionFollowsTheLeadingStar() throws {
    let stepped = try CronSchedule(parsing: "0 0 */2 * 1-5")
    #expect(!stepped.restrictsDayOfMonth && stepped.restrictsDayOfWeek)
    let ranged = try CronSchedule(parsing: "0 0 1-31 * *")
    #expect(ranged.restrictsDayOfMonth && !ranged.restrictsDayOfWeek)
}

@Test(arguments: [
    ("61 * * * *", "minute 61 is out of range 0-59"),
    ("* 24 * * *", "hour 24 is out of range 0-23"),
    ("* * 0 * *", "day-of-month 0 is out of range 1-31"),
    ("* * 32 * *", "day-of-month 32 is out of range 1-31"),
    ("* * * 13 *", "month 13 is out of range 1-12 or JAN-DEC"),
    ("* * * * 8", "day-of-week 8 is out of range 0-7 or SUN-SAT"),
    ("* * * FOO *", "month \"FOO\" is not a value; use 1-12 or JAN-DEC, lists (1,15), ranges (1-5) and steps (*/15)"),
    ("* * * * FUN", "day-of-week \"FUN\" is not a value; use 0-7 or SUN-SAT, lists (1,15), ranges (1-5) and steps (*/15)"),
    ("a * * * *", "minute \"a\" is not a value; use 0-59, lists (1,15), ranges (1-5) and steps (*/15)"),
    ("*/0 * * * *", "minute step \"0\" must be a whole number of at least 1"),
    ("*/x * * * *", "minute step \"x\" must be a whole number of at least 1"),
    ("1/2/3 * * * *", "minute \"1/2/3\" has more than one /; use start-end/step"),
    ("5-1 * * * *", "minute range 5-1 runs backwards; write it low-high within 0-59"),
    ("* * * DEC-JAN *", "month range DEC-JAN runs backwards; write it low-high within 1-12 or JAN-DEC"),
    ("-1 * * * *", "minute range \"-1\" needs a value on both sides of -; allowed: 0-59"),
    ("1,,2 * * * *", "minute has an empty list item; separate values with single commas"),
    ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
    ("* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
    ("", "expected 5 fields (minute hour day-of-month month day-of-week), got 0"),
    ("@reboot", "unknown alias @reboot; use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"),
])
func cronErrorsNameTheFieldAndWhatIsAllowed(_ expression: String, _ reason: String) {
    let error = scheduleError { _ = try CronSchedule(parsing: expression) }
    #expect(error == .invalidCron(expression: expression, reason: reason))
    #expect(error?.description == "invalid cron \"\(expression)\": \(reason)")
    #expect(error?.description.contains("\n") == false)
}

@Test func cronRoundTripsThroughCodableAsItsExpression() throws {
    let cron = try CronSchedule(parsing: "*/5 9-17 * * MON-FRI")
    let data = try JSONEncoder().encode(cron)
    #expect(String(decoding: data, as: UTF8.self) == "\"*\\/5 9-17 * * MON-FRI\"")
    #expect(try JSONDecoder().decode(CronSchedule.self, from: data) == cron)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(CronSchedule.self, from: Data("\"61 * * * *\"".utf8)) }
}
