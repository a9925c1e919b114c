// TimeArguments: `--start-in 15m`, `--start-at 2026-11-21T06:00:00Z`, `--since 2h`, `--older-than 30d`,
// and `--param key=value` / `--params JSON` for a run's parameters.
import Foundation

/// Parses the CLI's time and parameter arguments.
public enum TimeArguments {
    /// Seconds of `90`, `90s`, `15m`, `2h`, `1d`, `1w` (fractions allowed); nil for anything else or a negative.
    public static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var number = text.trimmingCharacters(in: .whitespaces).lowercased()
        var factor = 1.0
        if let last = number.last, let f = units[last] {
            factor = f
            number.removeLast()
        }
        guard let n = Double(number), n >= 0, n.isFinite else { return nil }
        return n * factor
    }

    /// An ISO 8601 time with a zone (`2026-11-21T06:00:00Z`, `2026-11-21 06:00:00+01:00`), or one without
    /// a zone read in `timeZone` (default: local), or a date alone (midnight there).
    public static func date(_ text: String, timeZone: TimeZone = .current) -> Date? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = formatter.date(from: t.replacingOccurrences(of: " ", with: "T")) { return d }
        formatter.formatOptions = [.withInternetDateTime]
        if let d = formatter.date(from: t.replacingOccurrences(of: " ", with: "T")) { return d }
        let naive = DateFormatter()
        naive.locale = Locale(identifier: "en_US_POSIX")
        naive.timeZone = timeZone
        for format in ["yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm", "yyyy-MM-dd"] {
            naive.dateFormat = format
            if let d = naive.date(from: t) { return d }
        }
        return nil
    }

    /// `--since`: a duration back from `now` (`2h`) or a time (`2026-12-01 06:00`).
    public static func since(_ text: String, now: Date = Date()) throws -> Date {
        if let s = seconds(text) { return now.addingTimeInterval(-s) }
        if let d = date(text) { return d }
        throw CLIError.invalid("bad --since \"\(text)\": use a duration back from now (30m, 2h, 1d) or a time (2026-12-01 06:00)")
    }

    /// The scheduled start of a run: `--start-in` or `--start-at` (not both), or nil for now.
    public static func startTime(startIn: String?, startAt: String?, now: Date = Date()) throws -> Date? {
        if startIn != nil && startAt != nil { throw CLIError.invalid("give --start-in or --start-at, not both") }
        if let startAt {
            guard let date = date(startAt) else {
                throw CLIError.invalid("bad --start-at \"\(startAt)\": use ISO 8601, e.g. 2026-11-21T06:00:00Z (without a zone: local time)")
            }
            return date
        }
        guard let startIn else { return nil }
        guard let s = seconds(startIn) else { throw CLIError.invalid("bad --start-in \"\(startIn)\": use 90, 90s, 15m, 2h or 1d") }
        return now.addingTimeInterval(s)
    }

    /// `--param key=value` (value parsed as JSON, else text) over `--params {JSON object}`, as JSON object text.
    public static func parametersJSON(params: [String], json: String?) throws -> String {
        var object: [String: Any] = [:]
        if let json {
            guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let dict = value as? [String: Any] else {
                throw CLIError.invalid("--params must be a JSON object such as '{\"day\": \"2026-11-21\"}'")
            }
            object = dict
        }
        for p in params {
            guard let eq = p.firstIndex(of: "="), eq != p.startIndex else {
                throw CLIError.invalid("bad --param \"\(p)\": write key=value, e.g. --param day=2026-11-21")
            }
            let value = String(p[p.index(after: eq)...])
            object[String(p[..<eq])] = (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)) ?? value
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
