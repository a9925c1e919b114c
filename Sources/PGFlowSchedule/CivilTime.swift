// Civil (wall-clock) arithmetic without time zones.
//
// Schedules are searched in *wall seconds*: seconds since 1970-01-01T00:00 on a proleptic Gregorian
// calendar that has no time zone and no DST, so every day is exactly 86,400 wall seconds long. Only
// ZoneClock turns wall seconds into real instants. The day/date conversions are the CivilCalendar
// target's (Howard Hinnant's algorithms, exact for any Int year).

import CivilCalendar
import Foundation

/// Floor division: rounds toward negative infinity, unlike `/`.
@inline(__always)
func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

/// Modulo whose result has the sign of the divisor (always in `0..<b` for positive `b`).
@inline(__always)
func floorMod(_ a: Int, _ b: Int) -> Int { a - floorDiv(a, b) * b }

/// Ceiling division for a positive divisor.
@inline(__always)
func ceilDiv(_ a: Int, _ b: Int) -> Int { -floorDiv(-a, b) }

/// Calendar helpers on day numbers (days since 1970-01-01) and wall seconds.
enum Civil {
    static let secondsPerDay = 86_400

    /// Whether `year` has a February 29.
    static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    /// Number of days in `month` (1-12) of `year`.
    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Number of days in `year`.
    static func daysInYear(_ year: Int) -> Int { isLeapYear(year) ? 366 : 365 }

    /// Day number of a civil date (month 1-12, day 1-31).
    static func dayNumber(year: Int, month: Int, day: Int) -> Int { CivilDay.number(year: year, month: month, day: day) }

    /// Civil date of a day number.
    static func date(dayNumber: Int) -> (year: Int, month: Int, day: Int) { CivilDay.date(dayNumber) }

    /// Day of week of a day number: 0 = Sunday ... 6 = Saturday (1970-01-01 was a Thursday).
    static func weekday(dayNumber: Int) -> Int { floorMod(dayNumber + 4, 7) }

    /// Wall seconds of a civil date and time.
    static func wallSeconds(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) -> Int {
        dayNumber(year: year, month: month, day: day) * secondsPerDay + hour * 3600 + minute * 60 + second
    }
}

/// A wall-clock date and time split into fields.
struct WallTime: Hashable {
    var year: Int
    var month: Int
    var day: Int
    var hour: Int
    var minute: Int
    var second: Int

    /// Splits wall seconds into fields.
    init(wallSeconds: Int) {
        let days = floorDiv(wallSeconds, Civil.secondsPerDay)
        let secondOfDay = wallSeconds - days * Civil.secondsPerDay
        (year, month, day) = Civil.date(dayNumber: days)
        hour = secondOfDay / 3600
        minute = secondOfDay % 3600 / 60
        second = secondOfDay % 60
    }

    /// The day number (days since 1970-01-01) of this date.
    var dayNumber: Int { Civil.dayNumber(year: year, month: month, day: day) }

    /// Wall seconds of these fields.
    var wallSeconds: Int {
        Civil.wallSeconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }
}

/// Whole seconds since 1970 of `date`, rounded down; nil for dates too far out to compute with.
func epochSeconds(_ date: Date) -> Int? {
    let seconds = date.timeIntervalSince1970.rounded(.down)
    guard seconds.isFinite, abs(seconds) < 1e13 else { return nil }
    return Int(seconds)
}

/// The date at whole `seconds` since 1970.
func dateFromEpoch(_ seconds: Int) -> Date { Date(timeIntervalSince1970: TimeInterval(seconds)) }
