// RRuleParser: turns RRULE text (with an optional DTSTART line) into RRuleParts, or a
// ScheduleError naming the bad part and what it allows.

import Foundation

/// Parses the text given to ``RRuleSchedule/init(parsing:dtstart:timeZone:)``.
struct RRuleParser {
    let text: String
    /// The caller's zone, replaced by DTSTART's TZID when there is one.
    var timeZone: TimeZone
    /// DTSTART from the text, whole seconds since 1970.
    var dtstart: Int?

    static let supportedParts = "FREQ, INTERVAL, COUNT, UNTIL, BYMONTH, BYMONTHDAY, BYDAY, BYHOUR, BYMINUTE, WKST"
    static let weekdayNames = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]

    init(text: String, timeZone: TimeZone) {
        self.text = text
        self.timeZone = timeZone
    }

    private func failure(_ reason: String) -> ScheduleError { .invalidRRule(rule: text, reason: reason) }

    /// Reads the DTSTART line (if any) first, then the rule line, whose UNTIL may depend on the zone.
    mutating func parse() throws(ScheduleError) -> RRuleParts {
        var ruleLine: String?
        var startLine: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            let upper = line.uppercased()
            if line.isEmpty { continue }
            if upper.hasPrefix("DTSTART") {
                guard startLine == nil else { throw failure("DTSTART is given twice") }
                startLine = line
            } else if upper.hasPrefix("RRULE:") || !line.contains(":") {
                guard ruleLine == nil else { throw failure("only one RRULE line is supported") }
                ruleLine = upper.hasPrefix("RRULE:") ? String(line.dropFirst(6)) : line
            } else {
                let name = line.prefix { $0 != ":" && $0 != ";" }
                throw failure("\(name) lines are not supported; give a DTSTART line and an RRULE line")
            }
        }
        if let startLine { try parseStart(startLine) }
        guard let ruleLine, !ruleLine.isEmpty else {
            throw failure("no rule; write FREQ=...;... (e.g. FREQ=DAILY;BYHOUR=9)")
        }
        return try parseRule(ruleLine)
    }

    /// `DTSTART[;TZID=zone|;VALUE=DATE]:value`.
    private mutating func parseStart(_ line: String) throws(ScheduleError) {
        guard let colon = line.firstIndex(of: ":") else {
            throw failure("DTSTART needs a value, e.g. DTSTART:20260105T090000Z")
        }
        for parameter in line[..<colon].split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2 && pair[0].uppercased() == "TZID" {
                guard let zone = TimeZone(identifier: pair[1]) else { throw .unknownTimeZone(pair[1]) }
                timeZone = zone
            } else if !(pair.count == 2 && pair[0].uppercased() == "VALUE") {
                throw failure("DTSTART parameter \(parameter) is not supported; use TZID=zone")
            }
        }
        let value = String(line[line.index(after: colon)...])
        guard let parsed = dateTime(value) else {
            throw failure("DTSTART \(value) is not a date (20260105) or date-time (20260105T090000, 20260105T090000Z)")
        }
        dtstart = parsed.isUTC ? parsed.wall : ZoneClock(timeZone: timeZone).earliestInstant(atWall: parsed.wall)
    }

    private func parseRule(_ line: String) throws(ScheduleError) -> RRuleParts {
        var parts = RRuleParts()
        var seen: Set<String> = []
        for item in line.split(separator: ";", omittingEmptySubsequences: true) {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces).uppercased()
            }
            guard pair.count == 2, !pair[1].isEmpty else { throw failure("\(item) is not NAME=VALUE") }
            let (name, value) = (pair[0], pair[1])
            guard seen.insert(name).inserted else { throw failure("\(name) is given twice") }
            switch name {
            case "FREQ":
                guard let frequency = RRuleSchedule.Frequency(rawValue: value) else {
                    throw failure("FREQ=\(value) is not one of MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY")
                }
                parts.frequency = frequency
            case "INTERVAL": parts.interval = try positive(name, value)
            case "COUNT": parts.count = try positive(name, value)
            case "UNTIL": parts.until = try untilInstant(value)
            case "BYMONTH": parts.byMonth = try numbers(name, value, allowed: 1...12)
            case "BYMONTHDAY":
                parts.byMonthDay = try numbers(name, value, allowed: -31...31)
                if parts.byMonthDay.contains(0) { throw failure("BYMONTHDAY value 0 is out of range 1-31 or -31--1") }
            case "BYHOUR": parts.byHour = try numbers(name, value, allowed: 0...23)
            case "BYMINUTE": parts.byMinute = try numbers(name, value, allowed: 0...59)
            case "BYDAY": parts.byDay = try weekdayRules(value)
            case "WKST":
                guard let day = Self.weekdayNames.firstIndex(of: value) else {
                    throw failure("WKST=\(value) is not one of MO, TU, WE, TH, FR, SA, SU")
                }
                parts.weekStart = day
            case "BYSECOND", "BYSETPOS", "BYWEEKNO", "BYYEARDAY":
                throw failure("\(name) is not supported; supported parts: \(Self.supportedParts)")
            default:
                throw failure("unknown part \(name); supported parts: \(Self.supportedParts)")
            }
        }
        guard seen.contains("FREQ") else {
            throw failure("FREQ is required (MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY)")
        }
        if seen.contains("COUNT") && seen.contains("UNTIL") {
            throw failure("COUNT and UNTIL cannot both be given")
        }
        if parts.byDay.contains(where: { $0.ordinal != nil }) {
            let limit = parts.frequency == .monthly ? 5 : 53
            guard parts.frequency == .monthly || parts.frequency == .yearly else {
                throw failure("BYDAY with a number (like 1MO or -1FR) needs FREQ=MONTHLY or FREQ=YEARLY")
            }
            if let bad = parts.byDay.first(where: { abs($0.ordinal!) > limit }) {
                throw failure("BYDAY ordinal \(bad.ordinal!) is out of range 1-\(limit) or -\(limit)--1 for FREQ=\(parts.frequency.rawValue)")
            }
        }
        return parts
    }

    private func positive(_ name: String, _ value: String) throws(ScheduleError) -> Int {
        guard value.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(value), number >= 1 else {
            throw failure("\(name)=\(value) must be a whole number of at least 1")
        }
        return number
    }

    private func numbers(_ name: String, _ value: String, allowed: ClosedRange<Int>) throws(ScheduleError) -> [Int] {
        var result: [Int] = []
        for item in value.split(separator: ",", omittingEmptySubsequences: false) {
            guard let number = Int(item) else {
                throw failure("\(name) value \"\(item)\" is not a whole number")
            }
            guard allowed.contains(number) else {
                let range = allowed.lowerBound < 0
                    ? "1-\(allowed.upperBound) or -\(allowed.upperBound)--1"
                    : "\(allowed.lowerBound)-\(allowed.upperBound)"
                throw failure("\(name) value \(number) is out of range \(range)")
            }
            result.append(number)
        }
        return result
    }

    /// `MO`, `1MO`, `+2TU`, `-1FR`, comma-separated.
    private func weekdayRules(_ value: String) throws(ScheduleError) -> [WeekdayRule] {
        var result: [WeekdayRule] = []
        for item in value.split(separator: ",", omittingEmptySubsequences: false) {
            let name = String(item.suffix(2))
            let number = item.dropLast(2)
            guard let weekday = Self.weekdayNames.firstIndex(of: name),
                number.isEmpty || (Int(number) != nil && Int(number) != 0)
            else {
                throw failure("BYDAY value \"\(item)\" is not a weekday (MO, TU, WE, TH, FR, SA, SU) with an optional number (1MO, -1FR)")
            }
            result.append(WeekdayRule(weekday: weekday, ordinal: number.isEmpty ? nil : Int(number)))
        }
        return result
    }

    /// UNTIL in whole seconds: UTC with `Z`, else local in the zone; a date alone means its last second.
    private func untilInstant(_ value: String) throws(ScheduleError) -> Int {
        guard let parsed = dateTime(value) else {
            throw failure("UNTIL=\(value) is not a date (20261231) or date-time (20261231T235959Z)")
        }
        if parsed.isUTC { return parsed.wall }
        let wall = parsed.isDateOnly ? parsed.wall + Civil.secondsPerDay - 1 : parsed.wall
        return ZoneClock(timeZone: timeZone).earliestInstant(atWall: wall)
    }

    /// `YYYYMMDD` or `YYYYMMDDTHHMMSS` with an optional `Z`, as wall seconds.
    private func dateTime(_ value: String) -> (wall: Int, isUTC: Bool, isDateOnly: Bool)? {
        let characters = Array(value.uppercased())
        let isUTC = characters.last == "Z"
        let body = isUTC ? Array(characters.dropLast()) : characters
        func number(_ range: Range<Int>) -> Int? {
            let digits = body[range]
            return digits.allSatisfy({ $0.isASCII && $0.isNumber }) ? Int(String(digits)) : nil
        }
        guard body.count == 8 || (body.count == 15 && body[8] == "T"),
            let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
            (1...12).contains(month), (1...Civil.daysInMonth(year: year, month: month)).contains(day)
        else { return nil }
        if body.count == 8 {
            return isUTC ? nil : (Civil.wallSeconds(year: year, month: month, day: day), false, true)
        }
        guard let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
            hour < 24, minute < 60, second < 60
        else { return nil }
        return (Civil.wallSeconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second), isUTC, false)
    }
}
