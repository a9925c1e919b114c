// ScheduleError: the one error type of PGFlowSchedule. Every case prints as a single line that names
// the bad input and says what is allowed, so the CLI and the scheduler can show it to a user as is.

import Foundation

/// A schedule that cannot be built from what the user wrote.
///
/// `description` is one line naming the bad part and what is allowed, for example
/// `invalid cron "61 * * * *": minute 61 is out of range 0-59`.
public enum ScheduleError: Error, Hashable, Sendable, CustomStringConvertible, LocalizedError {
    /// A cron expression that does not parse; `reason` names the field and the allowed values.
    case invalidCron(expression: String, reason: String)
    /// An interval that is not a positive, finite number of seconds, or whose text does not parse.
    case invalidInterval(expression: String, reason: String)
    /// An RRULE (or its DTSTART line) that does not parse; `reason` names the bad part.
    case invalidRRule(rule: String, reason: String)
    /// A time zone name that the system time zone database does not know.
    case unknownTimeZone(String)
    /// A schedule kind other than `cron`, `interval` or `rrule`.
    case unknownKind(String)

    /// One line naming the bad input and what is allowed.
    public var description: String {
        switch self {
        case .invalidCron(let expression, let reason):
            return "invalid cron \"\(expression)\": \(reason)"
        case .invalidInterval(let expression, let reason):
            return "invalid interval \"\(expression)\": \(reason)"
        case .invalidRRule(let rule, let reason):
            let oneLine = rule.split(whereSeparator: \.isNewline).joined(separator: " ")
            return "invalid rrule \"\(oneLine)\": \(reason)"
        case .unknownTimeZone(let name):
            return "unknown time zone \"\(name)\": use an IANA name such as \"UTC\" or \"Europe/Berlin\""
        case .unknownKind(let kind):
            return "unknown schedule kind \"\(kind)\": use one of cron, interval, rrule"
        }
    }

    /// Same as ``description``, so `localizedDescription` prints the one line too.
    public var errorDescription: String? { description }
}
