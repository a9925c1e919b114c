// Helpers shared by the PGFlowSchedule tests: dates written as ISO 8601 text with their offset, so
// every expected answer reads as the local wall time it stands for.

import Foundation
@testable import PGFlowSchedule

/// The instant written as ISO 8601 with an offset, e.g. `2026-03-29T03:00:00+02:00`.
func instant(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    guard let date = formatter.date(from: text) else { fatalError("bad test date \(text)") }
    return date
}

/// A time zone the tests rely on.
func zone(_ identifier: String) -> TimeZone {
    guard let timeZone = TimeZone(identifier: identifier) else { fatalError("no time zone \(identifier)") }
    return timeZone
}

/// `count` successive results of `next`, each asked for the time after the previous one.
func successive(_ count: Int, after start: Date, _ next: (Date) -> Date?) -> [Date] {
    var result: [Date] = []
    var current = start
    while result.count < count, let date = next(current) {
        result.append(date)
        current = date
    }
    return result
}

/// The ScheduleError a throwing call throws, or nil if it throws nothing (or something else).
func scheduleError(_ body: () throws -> Void) -> ScheduleError? {
    do {
        try body()
        return nil
    } catch {
        return error as? ScheduleError
    }
}
