// PGFlowSchedule: pure schedule math for pgflow, with no I/O and no dependency but Foundation.
//
// Three kinds of schedule, each answering "when is the next run after this instant?":
// - CronSchedule: 5-field cron with Vixie semantics, evaluated in a time zone.
// - IntervalSchedule: every N seconds in phase with an anchor; whole days keep wall-clock time.
// - RRuleSchedule: the common subset of RFC 5545 recurrence rules.
// `Schedule` wraps them for the scheduler service, and `Schedule(kind:expression:timeZone:)`
// builds one from the pgflow.yaml / SQL form. All wall-clock to instant mapping goes through
// ZoneClock, with one rule for DST: a wall time that does not exist runs at the first instant after
// the gap, and one that occurs twice runs at its first occurrence (cron schedules that run every
// hour follow real time instead; see CronSchedule+NextDate.swift). Errors are `ScheduleError`.

import Foundation

/// The kinds of schedule a deployment can have, as written in pgflow.yaml and stored in SQL.
public enum ScheduleKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// A 5-field cron expression or alias.
    case cron
    /// A fixed interval: seconds (`3600`) or units (`1h30m`, `1d`).
    case interval
    /// An RFC 5545 recurrence rule, optionally with a DTSTART line.
    case rrule
}

/// A deployment's schedule: what the scheduler service asks for the next run times.
public enum Schedule: Sendable, Hashable, Codable {
    /// A cron expression evaluated in a time zone.
    case cron(CronSchedule, timeZone: TimeZone)
    /// A fixed interval (its time zone matters only for whole-day intervals).
    case interval(IntervalSchedule)
    /// A recurrence rule (it carries its own start and time zone).
    case rrule(RRuleSchedule)

    /// The anchor used when none is given: 2020-01-01T00:00 local time in `timeZone`, the same date
    /// Prefect uses, so intervals and rules without a DTSTART start at local midnight.
    public static func defaultAnchor(in timeZone: TimeZone) -> Date {
        let wall = Civil.wallSeconds(year: 2020, month: 1, day: 1)
        return dateFromEpoch(ZoneClock(timeZone: timeZone).earliestInstant(atWall: wall))
    }

    /// Builds a schedule from its stored form.
    ///
    /// - Parameters:
    ///   - kind: `cron`, `interval` or `rrule` (case-insensitive).
    ///   - expression: the cron expression, interval (`3600`, `15m`, `1d`) or RRULE text.
    ///   - timeZone: an IANA time zone name such as `UTC` or `Europe/Berlin`.
    ///   - anchor: the interval's anchor and the rule's DTSTART when its text has none;
    ///     ``defaultAnchor(in:)`` when nil.
    /// - Throws: ``ScheduleError`` naming the unknown kind or time zone, or what is wrong with the
    ///   expression.
    public init(kind: String, expression: String, timeZone: String, anchor: Date? = nil) throws(ScheduleError) {
        guard let scheduleKind = ScheduleKind(rawValue: kind.trimmingCharacters(in: .whitespaces).lowercased()) else {
            throw .unknownKind(kind)
        }
        guard let zone = TimeZone(identifier: timeZone.trimmingCharacters(in: .whitespaces)) else {
            throw .unknownTimeZone(timeZone)
        }
        let anchor = anchor ?? Self.defaultAnchor(in: zone)
        switch scheduleKind {
        case .cron:
            self = .cron(try CronSchedule(parsing: expression), timeZone: zone)
        case .interval:
            self = .interval(try IntervalSchedule(parsing: expression, anchor: anchor, timeZone: zone))
        case .rrule:
            self = .rrule(try RRuleSchedule(parsing: expression, dtstart: anchor, timeZone: zone))
        }
    }

    /// Which kind of schedule this is.
    public var kind: ScheduleKind {
        switch self {
        case .cron: return .cron
        case .interval: return .interval
        case .rrule: return .rrule
        }
    }

    /// The time zone the schedule is evaluated in.
    public var timeZone: TimeZone {
        switch self {
        case .cron(_, let timeZone): return timeZone
        case .interval(let schedule): return schedule.timeZone
        case .rrule(let schedule): return schedule.timeZone
        }
    }

    /// The first run strictly after `date`, or nil when the schedule has no further runs.
    public func nextDate(after date: Date) -> Date? {
        switch self {
        case .cron(let schedule, let timeZone): return schedule.nextDate(after: date, in: timeZone)
        case .interval(let schedule): return schedule.nextDate(after: date)
        case .rrule(let schedule): return schedule.nextDate(after: date)
        }
    }

    /// The runs in `(after, until]`, ascending, at most `limit` of them.
    public func dates(after: Date, until: Date, limit: Int) -> [Date] {
        switch self {
        case .cron(let schedule, let timeZone):
            return schedule.dates(after: after, until: until, limit: limit, in: timeZone)
        case .interval(let schedule):
            return schedule.dates(after: after, until: until, limit: limit)
        case .rrule(let schedule):
            return schedule.dates(after: after, until: until, limit: limit)
        }
    }
}
