// IntervalSchedule: fire every N seconds, in phase with an anchor date.
//
// Times are anchor + k·interval for every integer k (the anchor only fixes the phase; times before
// it count too, as in Prefect). Intervals that are a whole number of days keep the anchor's local
// wall-clock time in the schedule's time zone across DST (daily at 09:00 stays at 09:00); a wall
// time that does not exist on a spring-forward day fires at the first instant after the gap, and
// one that occurs twice fires at its first occurrence. Other intervals are fixed real seconds.

import Foundation

/// A schedule that fires at a fixed interval, in phase with an anchor date.
public struct IntervalSchedule: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Seconds between two runs; always positive and finite.
    public let interval: TimeInterval
    /// A date the schedule fires at; every other time is a whole number of intervals away.
    public let anchor: Date
    /// The zone whose wall clock whole-day intervals follow.
    public let timeZone: TimeZone

    /// A schedule firing every `seconds`, in phase with `anchor`.
    ///
    /// - Throws: ``ScheduleError/invalidInterval(expression:reason:)`` if `seconds` is not a positive,
    ///   finite number.
    public init(every seconds: TimeInterval, anchor: Date, timeZone: TimeZone = .gmt) throws(ScheduleError) {
        guard seconds.isFinite, seconds > 0 else {
            throw .invalidInterval(expression: "\(seconds)", reason: "the interval must be a positive number of seconds")
        }
        self.interval = seconds
        self.anchor = anchor
        self.timeZone = timeZone
    }

    /// Parses an interval written as seconds (`3600`, `0.5`) or as whole units `d`, `h`, `m`, `s`
    /// in that order (`1d`, `1h30m`, `90s`).
    ///
    /// - Throws: ``ScheduleError/invalidInterval(expression:reason:)`` naming what is wrong.
    public init(parsing text: String, anchor: Date, timeZone: TimeZone = .gmt) throws(ScheduleError) {
        let seconds = try Self.seconds(of: text)
        guard seconds > 0 else {
            throw .invalidInterval(expression: text, reason: "the interval must be a positive number of seconds")
        }
        try self.init(every: seconds, anchor: anchor, timeZone: timeZone)
    }

    private enum CodingKeys: String, CodingKey {
        case interval, anchor, timeZone
    }

    /// Decodes `interval`, `anchor` and `timeZone`, validating the interval like ``init(every:anchor:timeZone:)``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let seconds = try container.decode(TimeInterval.self, forKey: .interval)
        do {
            try self.init(
                every: seconds, anchor: try container.decode(Date.self, forKey: .anchor),
                timeZone: try container.decode(TimeZone.self, forKey: .timeZone))
        } catch let error as ScheduleError {
            throw DecodingError.dataCorruptedError(forKey: .interval, in: container, debugDescription: error.description)
        }
    }

    /// Whether the interval is a whole number of days, so runs keep the anchor's wall-clock time.
    public var keepsWallClockTime: Bool {
        interval.truncatingRemainder(dividingBy: TimeInterval(Civil.secondsPerDay)) == 0
    }

    /// A short form such as `every 3600s from 2026-01-01T00:00:00Z`.
    public var description: String {
        "every \(interval)s from \(anchor.formatted(.iso8601)) in \(timeZone.identifier)"
    }

    /// The first time strictly after `date` at which the schedule fires.
    public func nextDate(after date: Date) -> Date? {
        keepsWallClockTime ? nextDayAligned(after: date) : nextFixed(after: date)
    }

    /// The times in `(after, until]` at which the schedule fires, ascending, at most `limit` of them.
    public func dates(after: Date, until: Date, limit: Int) -> [Date] {
        var result: [Date] = []
        var current = after
        while result.count < limit, let next = nextDate(after: current), next <= until {
            result.append(next)
            current = next
        }
        return result
    }

    /// Fixed seconds: anchor + k·interval for the smallest k that is after `date`.
    private func nextFixed(after date: Date) -> Date? {
        let elapsed = date.timeIntervalSince(anchor)
        let estimate = (elapsed / interval).rounded(.down)
        guard estimate.isFinite, abs(estimate) < 1e15 else { return nil }
        var k = estimate + 1
        while anchor.addingTimeInterval(k * interval) <= date { k += 1 }
        while anchor.addingTimeInterval((k - 1) * interval) > date { k -= 1 }
        return anchor.addingTimeInterval(k * interval)
    }

    /// Whole days: the anchor's wall-clock time k·days later, resolved in the time zone.
    private func nextDayAligned(after date: Date) -> Date? {
        guard let anchorSeconds = epochSeconds(anchor), let after = epochSeconds(date),
            interval < 1e12
        else { return nil }
        let fraction = anchor.timeIntervalSince1970 - TimeInterval(anchorSeconds)
        let clock = ZoneClock(timeZone: timeZone)
        let step = Int(interval)
        let anchorWall = clock.wall(of: anchorSeconds)
        var k = floorDiv(clock.wall(of: after) - anchorWall, step) - 1
        while true {
            let instant = k == 0 ? anchorSeconds : clock.earliestInstant(atWall: anchorWall + k * step)
            let candidate = Date(timeIntervalSince1970: TimeInterval(instant) + fraction)
            if candidate > date { return candidate }
            k += 1
        }
    }

    /// Seconds in an interval text; see ``init(parsing:anchor:timeZone:)``.
    static func seconds(of text: String) throws(ScheduleError) -> TimeInterval {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if let plain = TimeInterval(trimmed), plain.isFinite {
            return plain
        }
        let units: [(Character, TimeInterval)] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)]
        var total: TimeInterval = 0
        var digits = ""
        var nextUnit = 0
        for character in trimmed {
            if character.isASCII && character.isNumber {
                digits.append(character)
                continue
            }
            guard let index = units.firstIndex(where: { $0.0 == character }), index >= nextUnit,
                let amount = TimeInterval(digits)
            else {
                throw .invalidInterval(
                    expression: text,
                    reason: "write seconds (3600) or whole units d, h, m, s in that order (1h30m, 1d)")
            }
            total += amount * units[index].1
            digits = ""
            nextUnit = index + 1
        }
        guard digits.isEmpty, nextUnit > 0 else {
            throw .invalidInterval(
                expression: text, reason: "write seconds (3600) or whole units d, h, m, s in that order (1h30m, 1d)")
        }
        return total
    }
}
