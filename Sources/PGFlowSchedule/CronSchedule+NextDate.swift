// Finding the next times a cron expression fires, in a time zone, correctly across DST.
//
// The search runs over wall-clock minutes and skips whole months, days and hours that cannot match,
// so one `nextDate` costs a handful of field checks and a few time zone look-ups. Each matching
// wall time is then placed on the real time line:
//
// - Schedules tied to wall hours (the hour field leaves out some hour, e.g. `30 2 * * *`):
//   a wall time in a spring-forward gap fires once, at the first instant after the gap
//   (02:30 on 2026-03-29 in Europe/Berlin fires at 03:00 CEST); one that occurs twice in a
//   fall-back overlap fires only at its first occurrence.
// - Schedules that run every hour (hour field `*`, e.g. `*/15 * * * *`, `@hourly`): they follow
//   real time, so a wall time in a gap does not happen and both occurrences in an overlap fire;
//   `*/15` keeps firing every 15 real minutes through both transitions.
//
// Either way the results are strictly increasing, so no instant fires twice.

import Foundation

extension CronSchedule {
    /// The first time strictly after `date` at which the expression fires in `timeZone`, or nil if
    /// it never fires in the following 50 years (e.g. `0 0 30 2 *`).
    public func nextDate(after date: Date, in timeZone: TimeZone) -> Date? {
        guard let after = epochSeconds(date) else { return nil }
        return nextInstant(after: after, clock: ZoneClock(timeZone: timeZone)).map(dateFromEpoch)
    }

    /// The times in `(after, until]` at which the expression fires in `timeZone`, ascending, at
    /// most `limit` of them.
    public func dates(after: Date, until: Date, limit: Int, in timeZone: TimeZone) -> [Date] {
        guard var current = epochSeconds(after), let end = epochSeconds(until) else { return [] }
        let clock = ZoneClock(timeZone: timeZone)
        var result: [Date] = []
        while result.count < limit, let next = nextInstant(after: current, clock: clock), next <= end {
            result.append(dateFromEpoch(next))
            current = next
        }
        return result
    }

    /// Whether the schedule follows real time (hour field matches every hour) rather than wall hours.
    var followsRealTime: Bool { hours == FieldSet(0...23) }

    /// Next firing instant after `after` (whole seconds since 1970).
    func nextInstant(after: Int, clock: ZoneClock) -> Int? {
        var wall = clock.searchStart(after: after)
        // Second occurrences of an overlap come after first occurrences of later wall times, so
        // keep the best of those and stop at the first wall time whose earliest instant is later:
        // earliest instants never decrease as wall time increases.
        var best: Int?
        while let match = nextMatchingWall(atOrAfter: wall) {
            switch clock.resolve(wall: match) {
            case .unique(let instant):
                if instant > after { return min(best ?? instant, instant) }
            case .overlap(let first, let second):
                if first > after { return min(best ?? first, first) }
                if followsRealTime && second > after { best = min(best ?? second, second) }
            case .gap(let gapEnd):
                if !followsRealTime && gapEnd > after { return min(best ?? gapEnd, gapEnd) }
            }
            wall = match + 60
        }
        return best
    }

    /// The first wall minute at or after `wall` (wall seconds) that matches every field, searching
    /// at most 50 years ahead.
    func nextMatchingWall(atOrAfter wall: Int) -> Int? {
        var time = WallTime(wallSeconds: ceilDiv(wall, 60) * 60)
        let lastYear = time.year + 50
        while time.year <= lastYear {
            if !months.contains(time.month) {
                if let month = months.first(atOrAfter: time.month + 1), month <= 12 {
                    time.month = month
                } else {
                    time.year += 1
                    time.month = months.first(atOrAfter: 1)!
                }
                (time.day, time.hour, time.minute) = (1, 0, 0)
                continue
            }
            if time.day > Civil.daysInMonth(year: time.year, month: time.month) {
                time.month += 1
                if time.month > 12 { (time.year, time.month) = (time.year + 1, 1) }
                (time.day, time.hour, time.minute) = (1, 0, 0)
                continue
            }
            if !dayMatches(time) {
                if daysOfWeek == FieldSet(0...6) {
                    // Only day-of-month matters: jump straight to its next listed day.
                    time.day = daysOfMonth.first(atOrAfter: time.day + 1) ?? 32
                } else {
                    time.day += 1
                }
                (time.hour, time.minute) = (0, 0)
                continue
            }
            if !hours.contains(time.hour) {
                if let hour = hours.first(atOrAfter: time.hour + 1), hour <= 23 {
                    (time.hour, time.minute) = (hour, 0)
                } else {
                    (time.day, time.hour, time.minute) = (time.day + 1, 0, 0)
                }
                continue
            }
            if !minutes.contains(time.minute) {
                if let minute = minutes.first(atOrAfter: time.minute + 1), minute <= 59 {
                    time.minute = minute
                } else if time.hour < 23 {
                    (time.hour, time.minute) = (time.hour + 1, 0)
                } else {
                    (time.day, time.hour, time.minute) = (time.day + 1, 0, 0)
                }
                continue
            }
            return time.wallSeconds
        }
        return nil
    }

    /// Day-of-month and day-of-week together, with the Vixie rule: when both are restricted a day
    /// matches if either does.
    private func dayMatches(_ time: WallTime) -> Bool {
        let dayOfMonthMatches = daysOfMonth.contains(time.day)
        let dayOfWeekMatches = daysOfWeek.contains(Civil.weekday(dayNumber: time.dayNumber))
        if restrictsDayOfMonth && restrictsDayOfWeek { return dayOfMonthMatches || dayOfWeekMatches }
        return dayOfMonthMatches && dayOfWeekMatches
    }
}
