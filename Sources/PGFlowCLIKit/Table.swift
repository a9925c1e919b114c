// Table: listings as aligned columns and records as `key  value` lines, for people.
import Foundation
import PGFlowPostgres

/// Renders query results as text lines.
public enum Table {
    /// An aligned table with a header, or `(none)`; cells wider than `maxWidth` are cut with `…`.
    public static func lines(_ result: PostgresResult, timestamps: Timestamps, maxWidth: Int = 60) -> [String] {
        if result.rows.isEmpty { return ["(none)"] }
        let header = result.columns.names.map { $0.uppercased().replacingOccurrences(of: "_", with: " ") }
        let cells = result.rows.map { row in row.values.map { timestamps.cell($0) } }
        return lines(header: header, rows: cells, maxWidth: maxWidth)
    }

    /// An aligned table of text cells.
    public static func lines(header: [String], rows: [[String]], maxWidth: Int = 60) -> [String] {
        let widths = header.indices.map { i in min(maxWidth, ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0) }
        func line(_ values: [String]) -> String {
            var out = values.enumerated().map { i, v in
                let text = v.count > widths[i] ? String(v.prefix(widths[i] - 1)) + "…" : v
                return text.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
            while out.last == " " { out.removeLast() }
            return out
        }
        return [line(header)] + rows.map(line)
    }

    /// One record as `name  value` lines (nil when the result has no row).
    public static func record(_ result: PostgresResult, timestamps: Timestamps) -> [String]? {
        guard let row = result.first else { return nil }
        let width = result.columns.names.map(\.count).max() ?? 0
        return zip(result.columns.names, row.values).map { name, value in
            "\(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(timestamps.cell(value))"
        }
    }
}
