// The dashboard's HTML vocabulary: escaping (every value that reaches a page goes through `h`),
// the JSON rows the pages render, and the small pieces every page uses (state badges, times,
// durations, tables, the SQL box). No templates: a page is a function that returns a string.
import Foundation

/// Escapes text for HTML element content and quoted attribute values.
func h(_ value: Any?) -> String {
    guard let value, !(value is NSNull) else { return "" }
    var out = ""
    let text = value as? String ?? "\(value)"
    out.reserveCapacity(text.utf8.count)
    for ch in text.unicodeScalars {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(ch)
        }
    }
    return out
}

/// Percent-encodes a value for a query string or a path segment.
func urlEncode(_ value: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
}

/// A row of a JSON array answered by PostgreSQL.
typealias Row = [String: Any]

/// The objects of a JSON array text (none when it is not one).
func rows(_ json: String) -> [Row] {
    (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [Row] ?? []
}

/// The JSON object text as a row (empty when it is not one).
func row(_ json: String) -> Row {
    (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? Row ?? [:]
}

extension Dictionary where Key == String, Value == Any {
    /// A text field ("" when null or absent).
    func s(_ key: String) -> String {
        guard let v = self[key], !(v is NSNull) else { return "" }
        return v as? String ?? "\(v)"
    }
    /// A numeric field (0 when null or absent).
    func n(_ key: String) -> Double { (self[key] as? NSNumber)?.doubleValue ?? Double(s(key)) ?? 0 }
    /// An integer field.
    func i(_ key: String) -> Int { Int(n(key)) }
    /// A boolean field.
    func b(_ key: String) -> Bool { (self[key] as? Bool) ?? ((self[key] as? NSNumber)?.boolValue ?? false) }
    /// A timestamp field (PostgreSQL's JSON text: `2026-12-04T18:30:01.123456+00:00`).
    func date(_ key: String) -> Date? { parsePostgresDate(s(key)) }
}

/// ISO 8601 parsers and printer made once (making one per timestamp dominated a page's render time).
private enum ISO {
    nonisolated(unsafe) static let fractional: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
    nonisolated(unsafe) static let plain = ISO8601DateFormatter()
    static let lock = NSLock()
    static func parse(_ text: String) -> Date? { lock.withLock { fractional.date(from: text) ?? plain.date(from: text) } }
    static func print(_ date: Date) -> String { lock.withLock { plain.string(from: date) } }
}

/// Parses the timestamps PostgreSQL writes in JSON.
func parsePostgresDate(_ text: String) -> Date? {
    guard !text.isEmpty else { return nil }
    if let d = ISO.parse(text) { return d }
    // PostgreSQL may write "+00:00" with 1 to 6 fraction digits, or "+00" (no minutes)
    var t = text
    if let r = t.range(of: #"[+-]\d\d$"#, options: .regularExpression) { t.replaceSubrange(r, with: t[r] + ":00") }
    if let dot = t.firstIndex(of: "."), let zone = t[dot...].firstIndex(where: { $0 == "+" || $0 == "-" || $0 == "Z" }) {
        let digits = t[t.index(after: dot)..<zone]
        t.replaceSubrange(t.index(after: dot)..<zone, with: String((digits + "000").prefix(3)))
    }
    return ISO.parse(t)
}

enum Format {
    nonisolated(unsafe) static let time: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
        return f
    }()
    static let lock = NSLock()

    /// `<time>` of a timestamp in UTC ("—" when none).
    static func when(_ date: Date?) -> String {
        guard let date else { return "<span class=\"muted\">—</span>" }
        let text = lock.withLock { time.string(from: date) }
        return "<time datetime=\"\(ISO.print(date))\">\(text)</time>"
    }

    /// A duration such as 4.2 s, 3 m 12 s, 2 h 5 m.
    static func duration(_ seconds: Double) -> String {
        let s = max(0, seconds)
        if s < 60 { return String(format: "%.1f s", s) }
        if s < 3600 { return "\(Int(s) / 60) m \(Int(s) % 60) s" }
        if s < 86400 { return "\(Int(s) / 3600) h \(Int(s) % 3600 / 60) m" }
        return "\(Int(s) / 86400) d \(Int(s) % 86400 / 3600) h"
    }

    /// A run's duration: the run time so far while it runs (ticking in the browser), else its total.
    static func runDuration(_ r: Row, now: Date = Date()) -> String {
        let type = r.s("state_type")
        if ["RUNNING", "CANCELLING", "PAUSED"].contains(type), let start = r.date("start_time") {
            let end = r.date("end_time") ?? now
            let live = type == "RUNNING" || type == "CANCELLING"
            let attr = live ? " data-start=\"\(Int(start.timeIntervalSince1970 * 1000))\"" : ""
            return "<span class=\"dur\"\(attr)>\(duration(end.timeIntervalSince(start)))</span>"
        }
        if let start = r.date("start_time"), let end = r.date("end_time") {
            return "<span class=\"dur\">\(duration(max(r.n("total_run_time"), end.timeIntervalSince(start))))</span>"
        }
        let total = r.n("total_run_time")
        return total > 0 ? "<span class=\"dur\">\(duration(total))</span>" : "<span class=\"muted\">—</span>"
    }

    /// A number with thousands separators.
    static func count(_ n: Int) -> String {
        let f = NumberFormatter()
        f.numberStyle = .decimal
        f.locale = Locale(identifier: "en_US_POSIX")
        f.groupingSeparator = ","
        f.usesGroupingSeparator = true
        return f.string(from: NSNumber(value: n)) ?? "\(n)"
    }

    /// Pretty-printed JSON of any value.
    static func json(_ value: Any?) -> String {
        guard let value, !(value is NSNull) else { return "null" }
        guard JSONSerialization.isValidJSONObject(value) || value is String || value is NSNumber,
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        else { return "\(value)" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A state badge: the state name is always written; the colour comes from the state type.
func stateBadge(_ type: String, _ name: String) -> String {
    let t = type.uppercased().filter { $0.isLetter }
    return "<span class=\"state s-\(h(t))\" data-state-type=\"\(h(t))\">\(h(name.isEmpty ? type.capitalized : name))</span>"
}

/// A table with a caption-free header and rows (cells already HTML), or a note when empty.
func table(_ headers: [String], _ body: [[String]], empty: String, attributes: String = "") -> String {
    if body.isEmpty { return "<p class=\"muted\">\(h(empty))</p>" }
    var out = "<div class=\"scroll\"><table\(attributes)><thead><tr>"
    for header in headers { out += "<th scope=\"col\">\(header)</th>" }
    out += "</tr></thead><tbody>"
    for cells in body { out += "<tr>" + cells.map { "<td>\($0)</td>" }.joined() + "</tr>" }
    return out + "</tbody></table></div>"
}

/// The box under a list that shows the SQL returning the same rows, ready for psql.
func sqlBox(_ sql: String) -> String {
    "<details class=\"sql\"><summary>SQL for these rows</summary><pre><code>\(h(sql))</code></pre>"
        + "<button type=\"button\" class=\"copy\" data-copy=\"\(h(sql))\">Copy</button></details>"
}

/// A SQL literal of a value (for the SQL box only: it is shown, never run).
func sqlLiteral(_ value: String?) -> String {
    guard let value else { return "NULL" }
    return "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
}

/// A link to a flow run.
func runLink(_ id: String, _ name: String) -> String {
    "<a href=\"/flow-runs/\(urlEncode(id))\">\(h(name.isEmpty ? id : name))</a>"
}

/// A link to a deployment page (`flow/name`), or the text when it has no `/`.
func deploymentLink(_ full: String) -> String {
    let parts = full.split(separator: "/", maxSplits: 1).map(String.init)
    guard parts.count == 2 else { return h(full) }
    return "<a href=\"/deployments/\(urlEncode(parts[0]))/\(urlEncode(parts[1]))\">\(h(full))</a>"
}
