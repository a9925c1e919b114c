// Timestamps: the one format people read, `2026-12-01 09:45:03+01:00`, whole seconds, in the local time
// zone (or UTC); scripts get ISO 8601 from `--json`.
import Foundation
import PGFlowPostgres

/// Formats times for tables and followed runs.
public struct Timestamps: Sendable {
    /// The zone times are shown in.
    public let timeZone: TimeZone

    /// Local time (the TZ variable, else the system's), or UTC.
    public init(utc: Bool) {
        timeZone = utc ? .gmt : .current
    }

    /// Times in `timeZone`.
    public init(timeZone: TimeZone) {
        self.timeZone = timeZone
    }

    /// `yyyy-MM-dd HH:mm:ss±hh:mm`, seconds truncated.
    public func format(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let whole = Date(timeIntervalSince1970: (date.timeIntervalSince1970).rounded(.down))
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: whole)
        let offset = timeZone.secondsFromGMT(for: whole)
        let sign = offset < 0 ? "-" : "+"
        let minutes = abs(offset) / 60
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d%@%02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!,
                      sign, minutes / 60, minutes % 60)
    }

    /// A cell's text: timestamptz values (as PostgreSQL prints them, with or without fractions) in the
    /// one format, newlines flattened, NULL as `-`.
    public func cell(_ value: String?) -> String {
        guard let value else { return "-" }
        if Self.looksLikeTimestamp(value), let date = try? Date(postgresText: value) { return format(date) }
        return value.replacingOccurrences(of: "\n", with: " ")
    }

    /// True for `2026-12-01 08:45:00+00` and `2026-12-01 08:45:00.5+05:30`.
    static func looksLikeTimestamp(_ text: String) -> Bool {
        text.range(of: #"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2}){0,2}$"#, options: .regularExpression) != nil
    }
}
