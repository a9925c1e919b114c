// CronSchedule: a parsed 5-field cron expression (minute hour day-of-month month day-of-week).
//
// Syntax, as in Vixie cron: each field is a comma-separated list of `*`, `N`, `N-M`, each with an
// optional `/step`; `N/step` means `N-max/step`. Months and weekdays also take three-letter English
// names (`JAN`, `MON-FRI`, case-insensitive). Day-of-week 0 and 7 are both Sunday, and a range that
// ends in SUN (`FRI-SUN`) runs to 7. Aliases: @yearly @annually @monthly @weekly @daily @midnight
// @hourly. When both day-of-month and day-of-week are restricted a day matches if EITHER matches;
// otherwise both must. As in Vixie cron, a field counts as restricted unless it starts with `*`, so
// `0 0 */10 * MON` means "the 1st, 11th, 21st or 31st, if it is a Monday". Finding the next time is
// in CronSchedule+NextDate.swift.

import Foundation

/// A 5-field cron expression, parsed and validated.
///
/// Evaluate it in a time zone with ``nextDate(after:in:)`` or ``dates(after:until:limit:in:)``.
/// Two schedules are equal when their expressions are equal as written.
public struct CronSchedule: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The expression as written, e.g. `*/15 9-17 * * MON-FRI` or `@daily`.
    public let expression: String

    let minutes: FieldSet
    let hours: FieldSet
    let daysOfMonth: FieldSet
    let months: FieldSet
    /// Weekdays with Sunday as 0; a 7 in the expression is stored as 0.
    let daysOfWeek: FieldSet
    /// Whether the day-of-month field does not start with `*` (then the Vixie OR rule may apply).
    let restrictsDayOfMonth: Bool
    /// Whether the day-of-week field does not start with `*`.
    let restrictsDayOfWeek: Bool

    /// Parses a 5-field cron expression or an alias such as `@hourly`.
    ///
    /// - Throws: ``ScheduleError/invalidCron(expression:reason:)`` naming the bad field and the
    ///   values it allows, e.g. `invalid cron "61 * * * *": minute 61 is out of range 0-59`.
    public init(parsing expression: String) throws(ScheduleError) {
        self.expression = expression
        let trimmed = expression.trimmingCharacters(in: .whitespacesAndNewlines)
        let source: String
        if trimmed.hasPrefix("@") {
            guard let expanded = Self.aliases[trimmed.lowercased()] else {
                throw .invalidCron(
                    expression: expression,
                    reason: "unknown alias \(trimmed); use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly")
            }
            source = expanded
        } else {
            source = trimmed
        }
        let fields = source.split(whereSeparator: \.isWhitespace).map(String.init)
        guard fields.count == 5 else {
            throw .invalidCron(
                expression: expression,
                reason: "expected 5 fields (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        do {
            minutes = try CronField.minute.parse(fields[0])
            hours = try CronField.hour.parse(fields[1])
            daysOfMonth = try CronField.dayOfMonth.parse(fields[2])
            months = try CronField.month.parse(fields[3])
            var weekdays = try CronField.dayOfWeek.parse(fields[4])
            if weekdays.contains(7) { weekdays.insert(0) }
            weekdays.remove(7)
            daysOfWeek = weekdays
        } catch {
            throw .invalidCron(expression: expression, reason: error.reason)
        }
        restrictsDayOfMonth = !fields[2].hasPrefix("*")
        restrictsDayOfWeek = !fields[4].hasPrefix("*")
    }

    /// The expression as written.
    public var description: String { expression }

    /// Decodes from the expression string, validating it like ``init(parsing:)``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try CronSchedule(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    /// Encodes as the expression string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(expression)
    }

    static let aliases: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
}

/// A set of small integers (0...63) as a bit mask.
struct FieldSet: Hashable, Sendable {
    var bits: UInt64 = 0

    init() {}

    init(_ values: ClosedRange<Int>) {
        for value in values { insert(value) }
    }

    func contains(_ value: Int) -> Bool { value >= 0 && value < 64 && bits & (1 << UInt64(value)) != 0 }
    mutating func insert(_ value: Int) { bits |= 1 << UInt64(value) }
    mutating func remove(_ value: Int) { bits &= ~(1 << UInt64(value)) }

    /// The smallest member that is at least `value`, if any.
    func first(atOrAfter value: Int) -> Int? {
        guard value < 64 else { return nil }
        let masked = bits & (UInt64.max << UInt64(max(value, 0)))
        return masked == 0 ? nil : masked.trailingZeroBitCount
    }
}

/// Why one cron field does not parse; the caller adds the expression.
struct CronFieldError: Error {
    let reason: String
}

/// The rules for one of the five cron fields.
struct CronField {
    let name: String
    let range: ClosedRange<Int>
    /// Three-letter names, index 0 meaning `range.lowerBound` (months) or 0 (weekdays).
    let names: [String]

    static let minute = CronField(name: "minute", range: 0...59, names: [])
    static let hour = CronField(name: "hour", range: 0...23, names: [])
    static let dayOfMonth = CronField(name: "day-of-month", range: 1...31, names: [])
    static let month = CronField(
        name: "month", range: 1...12,
        names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
    static let dayOfWeek = CronField(
        name: "day-of-week", range: 0...7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])

    /// What the field allows, for error messages.
    var allowed: String {
        guard let first = names.first, let last = names.last else {
            return "\(range.lowerBound)-\(range.upperBound)"
        }
        return "\(range.lowerBound)-\(range.upperBound) or \(first)-\(last)"
    }

    /// Parses a whole field: a comma-separated list of items.
    func parse(_ text: String) throws(CronFieldError) -> FieldSet {
        var set = FieldSet()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            try parseItem(String(item), into: &set)
        }
        return set
    }

    private func parseItem(_ item: String, into set: inout FieldSet) throws(CronFieldError) {
        guard !item.isEmpty else {
            throw CronFieldError(reason: "\(name) has an empty list item; separate values with single commas")
        }
        let parts = item.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2 else {
            throw CronFieldError(reason: "\(name) \"\(item)\" has more than one /; use start-end/step")
        }
        var step = 1
        if parts.count == 2 {
            guard let value = Int(parts[1]), parts[1].allSatisfy(\.isASCII), value >= 1 else {
                throw CronFieldError(reason: "\(name) step \"\(parts[1])\" must be a whole number of at least 1")
            }
            step = value
        }
        let low: Int
        var high: Int
        let base = parts[0]
        if base == "*" {
            (low, high) = (range.lowerBound, range.upperBound)
            if name == "day-of-week" { high = 6 }
        } else if let dash = base.firstIndex(of: "-") {
            guard dash != base.startIndex, base.index(after: dash) != base.endIndex else {
                throw CronFieldError(reason: "\(name) range \"\(base)\" needs a value on both sides of -; allowed: \(allowed)")
            }
            low = try value(String(base[..<dash]))
            high = try value(String(base[base.index(after: dash)...]))
            if name == "day-of-week" && high == 0 && low > 0 { high = 7 }
            guard low <= high else {
                throw CronFieldError(reason: "\(name) range \(base) runs backwards; write it low-high within \(allowed)")
            }
        } else {
            low = try value(base)
            high = parts.count == 2 ? (name == "day-of-week" ? 6 : range.upperBound) : low
        }
        for member in stride(from: low, through: high, by: step) { set.insert(member) }
    }

    /// One value: a number in range or, for months and weekdays, a three-letter name.
    private func value(_ text: String) throws(CronFieldError) -> Int {
        if !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let number = Int(text), range.contains(number) else {
                throw CronFieldError(reason: "\(name) \(text) is out of range \(allowed)")
            }
            return number
        }
        if let index = names.firstIndex(of: text.uppercased()) {
            return name == "month" ? index + 1 : index
        }
        throw CronFieldError(reason: "\(name) \"\(text)\" is not a value; use \(allowed), lists (1,15), ranges (1-5) and steps (*/15)")
    }
}
