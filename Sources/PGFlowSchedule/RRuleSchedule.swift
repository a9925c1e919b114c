// RRuleSchedule: the common subset of RFC 5545 recurrence rules, parsed and validated.
//
// Supported parts: FREQ (MINUTELY HOURLY DAILY WEEKLY MONTHLY YEARLY), INTERVAL, COUNT, UNTIL,
// BYMONTH, BYMONTHDAY (negative counts from the month's end), BYDAY (with ordinals such as 1MO or
// -1FR for MONTHLY and YEARLY), BYHOUR, BYMINUTE and WKST. Input is either a bare rule
// (`FREQ=WEEKLY;BYDAY=MO`) or RFC 5545 lines (`DTSTART;TZID=Europe/Berlin:20260105T090000` and
// `RRULE:FREQ=...`). Semantics follow python-dateutil, the engine Prefect uses: DTSTART is an
// occurrence only if it matches the rule, and COUNT counts occurrences from DTSTART. The rule is
// expanded in wall-clock time (RRuleSchedule+Expansion.swift); parsing is in RRuleParser.swift.

import Foundation

/// A recurrence rule (RFC 5545 RRULE subset) with its start date and time zone.
public struct RRuleSchedule: Sendable, Hashable, Codable, CustomStringConvertible {
    /// How often the rule repeats, the FREQ part.
    public enum Frequency: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
        case minutely = "MINUTELY", hourly = "HOURLY", daily = "DAILY"
        case weekly = "WEEKLY", monthly = "MONTHLY", yearly = "YEARLY"

        /// Orders from the shortest period (minutely) to the longest (yearly).
        public static func < (lhs: Self, rhs: Self) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }
    }

    /// The text as given, including any DTSTART line.
    public let rule: String
    /// The first possible occurrence (whole seconds); it is an occurrence only if it matches the rule.
    public let dtstart: Date
    /// The zone in whose wall-clock time the rule is expanded (DTSTART's TZID when it has one).
    public let timeZone: TimeZone
    /// The FREQ part.
    public let frequency: Frequency
    /// The INTERVAL part (1 when absent): the rule uses every n-th period.
    public let interval: Int
    /// The COUNT part: how many occurrences there are at most, counted from ``dtstart``.
    public let count: Int?
    /// The UNTIL part: the last instant an occurrence may have (inclusive). A date-only UNTIL
    /// means the end of that day in ``timeZone``.
    public let until: Date?

    let byMonth: [Int]
    let byMonthDay: [Int]
    let byDay: [WeekdayRule]
    let byHour: [Int]
    let byMinute: [Int]
    /// Second of every occurrence: DTSTART's (BYSECOND is not supported).
    let second: Int
    /// First day of the week for WEEKLY periods, 0 = Sunday (WKST, default Monday).
    let weekStart: Int

    /// Parses a rule, with `dtstart` and `timeZone` used unless the text has its own DTSTART line.
    ///
    /// - Parameters:
    ///   - text: `FREQ=...;...`, optionally preceded by `RRULE:` and a `DTSTART` line.
    ///   - dtstart: where the rule starts when the text has no DTSTART line.
    ///   - timeZone: the zone the rule is expanded in, unless DTSTART names a TZID.
    /// - Throws: ``ScheduleError/invalidRRule(rule:reason:)`` naming the bad part, or
    ///   ``ScheduleError/unknownTimeZone(_:)`` for an unknown TZID.
    public init(parsing text: String, dtstart: Date? = nil, timeZone: TimeZone = .gmt) throws(ScheduleError) {
        var parser = RRuleParser(text: text, timeZone: timeZone)
        let parts = try parser.parse()
        guard let start = parser.dtstart ?? dtstart.flatMap(epochSeconds) else {
            throw .invalidRRule(rule: text, reason: "no start; add a DTSTART line (DTSTART:20260105T090000Z) or pass dtstart")
        }
        let zone = parser.timeZone
        let wall = WallTime(wallSeconds: ZoneClock(timeZone: zone).wall(of: start))

        self.rule = text
        self.dtstart = dateFromEpoch(start)
        self.timeZone = zone
        self.frequency = parts.frequency
        self.interval = parts.interval
        self.count = parts.count
        self.until = parts.until.map(dateFromEpoch)
        self.weekStart = parts.weekStart

        // Defaults from DTSTART, as RFC 5545 and dateutil apply them.
        var months = parts.byMonth
        var monthDays = parts.byMonthDay
        var days = parts.byDay
        if monthDays.isEmpty && days.isEmpty {
            switch frequency {
            case .yearly:
                if months.isEmpty { months = [wall.month] }
                monthDays = [wall.day]
            case .monthly:
                monthDays = [wall.day]
            case .weekly:
                days = [WeekdayRule(weekday: Civil.weekday(dayNumber: wall.dayNumber), ordinal: nil)]
            default:
                break
            }
        }
        self.byMonth = months
        self.byMonthDay = monthDays
        self.byDay = days
        self.byHour = parts.byHour.isEmpty && frequency > .hourly ? [wall.hour] : parts.byHour.sorted()
        self.byMinute = parts.byMinute.isEmpty && frequency > .minutely ? [wall.minute] : parts.byMinute.sorted()
        self.second = wall.second
    }

    /// The text as given.
    public var description: String { rule }

    private enum CodingKeys: String, CodingKey {
        case rule, dtstart, timeZone
    }

    /// Decodes `rule`, `dtstart` and `timeZone` and parses them like ``init(parsing:dtstart:timeZone:)``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let text = try container.decode(String.self, forKey: .rule)
        let start = try container.decode(Date.self, forKey: .dtstart)
        let zone = try container.decode(TimeZone.self, forKey: .timeZone)
        do {
            try self.init(parsing: text, dtstart: start, timeZone: zone)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .rule, in: container, debugDescription: error.description)
        }
    }

    /// Encodes `rule`, `dtstart` and `timeZone`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rule, forKey: .rule)
        try container.encode(dtstart, forKey: .dtstart)
        try container.encode(timeZone, forKey: .timeZone)
    }
}

/// One BYDAY entry: a weekday (0 = Sunday) and, for MONTHLY/YEARLY, which one (1 = first, -1 = last).
struct WeekdayRule: Hashable, Sendable {
    let weekday: Int
    let ordinal: Int?
}

/// The parts of an RRULE line, before DTSTART defaults are applied.
struct RRuleParts {
    var frequency: RRuleSchedule.Frequency = .daily
    var interval = 1
    var count: Int?
    /// Whole seconds since 1970.
    var until: Int?
    var byMonth: [Int] = []
    var byMonthDay: [Int] = []
    var byDay: [WeekdayRule] = []
    var byHour: [Int] = []
    var byMinute: [Int] = []
    var weekStart = 1
}
