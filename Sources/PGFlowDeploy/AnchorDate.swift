// AnchorDate: the `anchor_date` of a schedule in pgflow.yaml. A time without an offset is wall-clock
// time in the schedule's time zone (as Prefect reads it), not UTC.
import Foundation

/// Parses schedule anchors.
public enum AnchorDate {
    /// Parses `2026-01-01`, `2026-01-01T06:00`, `2026-01-01 06:00:00.5`, each optionally followed by `Z`
    /// or an offset (`+02:00`, `+0200`, `+02`). Without one, the time is read in `timeZone` (UTC when the
    /// zone is unknown: the schedule then reports the bad zone). Nil when the text is not such a time.
    public static func parse(_ text: String, timeZone: String) -> Date? {
        let pattern = #"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"#
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return nil }
        func group(_ i: Int) -> String? {
            guard let range = Range(match.range(at: i), in: text) else { return nil }
            return String(text[range])
        }
        var parts = DateComponents()
        parts.year = Int(group(1)!)
        parts.month = Int(group(2)!)
        parts.day = Int(group(3)!)
        parts.hour = group(4).flatMap(Int.init) ?? 0
        parts.minute = group(5).flatMap(Int.init) ?? 0
        parts.second = group(6).flatMap(Int.init) ?? 0
        guard let month = parts.month, (1...12).contains(month), let day = parts.day, (1...31).contains(day),
              parts.hour! < 24, parts.minute! < 60, parts.second! < 61 else { return nil }
        let fraction = group(7).map { Double("0.\($0)") ?? 0 } ?? 0
        var calendar = Calendar(identifier: .gregorian)
        if let offset = group(8) {
            guard let seconds = offsetSeconds(offset), let zone = TimeZone(secondsFromGMT: seconds) else { return nil }
            calendar.timeZone = zone
        } else {
            calendar.timeZone = TimeZone(identifier: timeZone) ?? .gmt
        }
        guard let date = calendar.date(from: parts),
              calendar.component(.day, from: date) == day else { return nil }  // 2026-02-30 is not a date
        return date.addingTimeInterval(fraction)
    }

    private static func offsetSeconds(_ text: String) -> Int? {
        if text == "Z" || text == "z" { return 0 }
        let sign = text.hasPrefix("-") ? -1 : 1
        let digits = text.dropFirst().replacingOccurrences(of: ":", with: "")
        guard let hours = Int(digits.prefix(2)), hours <= 18 else { return nil }
        let minutes = digits.count > 2 ? Int(digits.dropFirst(2)) ?? 99 : 0
        guard minutes < 60 else { return nil }
        return sign * (hours * 3600 + minutes * 60)
    }
}
