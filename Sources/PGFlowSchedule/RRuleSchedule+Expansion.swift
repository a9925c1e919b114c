// Expanding an RRULE into occurrences, period by period, in wall-clock time.
//
// Period n is the n·INTERVAL-th year/month/week/day/hour/minute after the one holding DTSTART. For
// each period the candidate days are filtered by BYMONTH, BYMONTHDAY and BYDAY (for BYDAY ordinals
// counted within the month for MONTHLY, and for YEARLY when BYMONTH is given, else within the year)
// and combined with the times from BYHOUR × BYMINUTE. Filtering covers both RFC 5545 "expand" and
// "limit" behaviour, because the candidate days of a period are all its days.
//
// Wall times become instants as everywhere in this module: a time in a spring-forward gap occurs at
// the first instant after the gap, one in a fall-back overlap at its first occurrence; two wall
// times that land on the same instant occur once. Without COUNT the search starts at the period
// holding the requested date; with COUNT it must count from DTSTART. Periods that cannot match are
// skipped whole, and the search gives up after a full 400-year Gregorian cycle of periods.

import Foundation

extension RRuleSchedule {
    /// The first occurrence strictly after `date`, or nil when the rule has ended or never matches.
    public func nextDate(after date: Date) -> Date? {
        var result: Date?
        if let after = epochSeconds(date) {
            forEachOccurrence(after: after) { instant in
                result = dateFromEpoch(instant)
                return false
            }
        }
        return result
    }

    /// The occurrences in `(after, until]`, ascending, at most `limit` of them.
    public func dates(after: Date, until: Date, limit: Int) -> [Date] {
        guard let start = epochSeconds(after), let end = epochSeconds(until), limit > 0 else { return [] }
        var result: [Date] = []
        forEachOccurrence(after: start) { instant in
            guard instant <= end else { return false }
            result.append(dateFromEpoch(instant))
            return result.count < limit
        }
        return result
    }

    /// Calls `body` with each occurrence later than `after` (whole seconds), in order, until it
    /// returns false or the rule ends.
    func forEachOccurrence(after: Int, _ body: (Int) -> Bool) {
        let clock = ZoneClock(timeZone: timeZone)
        let start = Int(dtstart.timeIntervalSince1970)
        let startWall = clock.wall(of: start)
        let untilInstant = until.flatMap(epochSeconds)
        let untilWall = untilInstant.map { clock.wall(of: $0) }
        let origin = PeriodOrigin(rule: self, startWall: startWall)
        var period = count == nil ? max(0, origin.period(containing: clock.searchStart(after: after))) : 0
        let lastPeriod = period + origin.cycleLength
        var emitted = 0
        var latest = Int.min
        while period <= lastPeriod {
            if let untilWall, origin.startWall(of: period) > untilWall + Civil.secondsPerDay { return }
            switch content(of: period, origin: origin) {
            case .skip(let next):
                period = max(next, period + 1)
                continue
            case .walls(let walls):
                for wall in walls where wall >= startWall {
                    let instant = wall == startWall ? start : clock.earliestInstant(atWall: wall)
                    guard instant > latest else { continue }
                    if let untilInstant, instant > untilInstant { return }
                    latest = instant
                    emitted += 1
                    if let count, emitted > count { return }
                    if instant > after && !body(instant) { return }
                }
            }
            period += 1
        }
    }

    /// What one period holds: its matching wall times, or the next period that could match.
    private enum PeriodContent {
        case walls([Int])
        case skip(to: Int)
    }

    private func content(of period: Int, origin: PeriodOrigin) -> PeriodContent {
        switch frequency {
        case .yearly, .monthly, .weekly:
            let days = origin.days(of: period).filter(dayMatches)
            return .walls(days.flatMap { day in timesOfDay.map { day * Civil.secondsPerDay + $0 } })
        case .daily:
            let day = origin.unitIndex(of: period)
            if let skip = skipTarget(day: day) { return .skip(to: origin.firstPeriod(atOrAfterUnit: skip)) }
            return .walls(timesOfDay.map { day * Civil.secondsPerDay + $0 })
        case .hourly:
            let hour = origin.unitIndex(of: period)
            let day = floorDiv(hour, 24)
            if let skip = skipTarget(day: day) { return .skip(to: origin.firstPeriod(atOrAfterUnit: skip * 24)) }
            guard byHour.isEmpty || byHour.contains(hour - day * 24) else { return .walls([]) }
            return .walls(byMinute.map { hour * 3600 + $0 * 60 + second })
        case .minutely:
            let minute = origin.unitIndex(of: period)
            let hour = floorDiv(minute, 60)
            let day = floorDiv(hour, 24)
            if let skip = skipTarget(day: day) { return .skip(to: origin.firstPeriod(atOrAfterUnit: skip * 1440)) }
            if !byHour.isEmpty && !byHour.contains(hour - day * 24) {
                return .skip(to: origin.firstPeriod(atOrAfterUnit: (hour + 1) * 60))
            }
            guard byMinute.isEmpty || byMinute.contains(minute - hour * 60) else { return .walls([]) }
            return .walls([minute * 60 + second])
        }
    }

    /// For DAILY and shorter periods: nil if `day` matches, else the first day worth trying next
    /// (the first of the next month when the month is wrong).
    private func skipTarget(day: Int) -> Int? {
        if dayMatches(day) { return nil }
        let date = Civil.date(dayNumber: day)
        guard !byMonth.isEmpty && !byMonth.contains(date.month) else { return day + 1 }
        return date.month == 12
            ? Civil.dayNumber(year: date.year + 1, month: 1, day: 1)
            : Civil.dayNumber(year: date.year, month: date.month + 1, day: 1)
    }

    /// Seconds of the day of every occurrence within a matching day (BYHOUR × BYMINUTE), ascending.
    private var timesOfDay: [Int] {
        byHour.flatMap { hour in byMinute.map { hour * 3600 + $0 * 60 + second } }
    }

    /// Whether a day passes BYMONTH, BYMONTHDAY and BYDAY.
    private func dayMatches(_ day: Int) -> Bool {
        let date = Civil.date(dayNumber: day)
        if !byMonth.isEmpty && !byMonth.contains(date.month) { return false }
        let monthLength = Civil.daysInMonth(year: date.year, month: date.month)
        if !byMonthDay.isEmpty
            && !byMonthDay.contains(date.day) && !byMonthDay.contains(date.day - monthLength - 1)
        {
            return false
        }
        if byDay.isEmpty { return true }
        let weekday = Civil.weekday(dayNumber: day)
        let withinMonth = frequency == .monthly || !byMonth.isEmpty
        let position = withinMonth ? date.day : day - Civil.dayNumber(year: date.year, month: 1, day: 1) + 1
        let length = withinMonth ? monthLength : Civil.daysInYear(date.year)
        return byDay.contains { rule in
            guard rule.weekday == weekday else { return false }
            guard let ordinal = rule.ordinal else { return true }
            return ordinal > 0 ? (position - 1) / 7 + 1 == ordinal : (length - position) / 7 + 1 == -ordinal
        }
    }
}

/// Where period 0 is, in the unit of the rule's frequency, and how to find periods from wall times.
private struct PeriodOrigin {
    let frequency: RRuleSchedule.Frequency
    let interval: Int
    /// Period 0 in units since 1970: years/months since year 0, day number of the week start, or
    /// days/hours/minutes since 1970.
    let unit: Int

    /// First day of the week (0 = Sunday), for WEEKLY periods.
    let weekStart: Int

    init(rule: RRuleSchedule, startWall: Int) {
        frequency = rule.frequency
        interval = rule.interval
        weekStart = rule.weekStart
        unit = Self.unit(ofWall: startWall, frequency: frequency, weekStart: weekStart)
    }

    /// The unit holding `wall`, in the same numbering as `unit`.
    static func unit(ofWall wall: Int, frequency: RRuleSchedule.Frequency, weekStart: Int) -> Int {
        let day = floorDiv(wall, Civil.secondsPerDay)
        let date = Civil.date(dayNumber: day)
        switch frequency {
        case .yearly: return date.year
        case .monthly: return date.year * 12 + date.month - 1
        case .weekly: return day - floorMod(Civil.weekday(dayNumber: day) - weekStart, 7)
        case .daily: return day
        case .hourly: return floorDiv(wall, 3600)
        case .minutely: return floorDiv(wall, 60)
        }
    }

    /// Units per period (weeks count in days).
    private var unitsPerPeriod: Int { frequency == .weekly ? 7 * interval : interval }

    /// The first unit of a period.
    func unitIndex(of period: Int) -> Int { unit + period * unitsPerPeriod }

    /// The period holding unit `target`.
    func period(containingUnit target: Int) -> Int { floorDiv(target - unit, unitsPerPeriod) }

    /// The first period that starts at or after unit `target`.
    func firstPeriod(atOrAfterUnit target: Int) -> Int { ceilDiv(target - unit, unitsPerPeriod) }

    /// The period holding wall time `wall`.
    func period(containing wall: Int) -> Int {
        period(containingUnit: Self.unit(ofWall: wall, frequency: frequency, weekStart: weekStart))
    }

    /// Wall seconds at which a period starts.
    func startWall(of period: Int) -> Int {
        let first = unitIndex(of: period)
        switch frequency {
        case .yearly: return Civil.wallSeconds(year: first, month: 1, day: 1)
        case .monthly: return Civil.wallSeconds(year: floorDiv(first, 12), month: floorMod(first, 12) + 1, day: 1)
        case .weekly, .daily: return first * Civil.secondsPerDay
        case .hourly: return first * 3600
        case .minutely: return first * 60
        }
    }

    /// Day numbers of a YEARLY, MONTHLY or WEEKLY period.
    func days(of period: Int) -> Range<Int> {
        let first = unitIndex(of: period)
        switch frequency {
        case .yearly:
            let start = Civil.dayNumber(year: first, month: 1, day: 1)
            return start..<(start + Civil.daysInYear(first))
        case .monthly:
            let (year, month) = (floorDiv(first, 12), floorMod(first, 12) + 1)
            let start = Civil.dayNumber(year: year, month: month, day: 1)
            return start..<(start + Civil.daysInMonth(year: year, month: month))
        default:
            return first..<(first + 7)
        }
    }

    /// Periods in 400 years: after that many the calendar pattern repeats, so a rule that found
    /// nothing will never find anything.
    var cycleLength: Int {
        switch frequency {
        case .yearly: return 400
        case .monthly: return 4_800
        case .weekly: return 20_871
        case .daily: return 146_097
        case .hourly: return 146_097 * 24
        case .minutely: return 146_097 * 1_440
        }
    }
}
