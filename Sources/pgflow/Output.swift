// Output and errors of the CLI: tables for people, `--json` for scripts, one-line errors with exit codes.
//
// Exit codes: 0 done; 1 the operation failed (or, with --watch, the run did not complete);
// 2 not available (this build or this database's schema lacks it); 3 cannot reach the database;
// 4 migrations pending (`db status`); 5 not found (unknown deployment, run, queue or limit);
// 6 invalid input (bad --param, bad pgflow.yaml, a value the database refused); 64 bad usage.
import ArgumentParser
import Foundation
import PGFlowClient
import PGFlowPostgres

/// A CLI failure: one line and an exit code.
struct CLIError: Error, CustomStringConvertible {
    /// The line printed after `pgflow: `.
    let description: String
    /// The exit code.
    let code: Int32

    static func notFound(_ what: String) -> CLIError { CLIError(description: what, code: 5) }
    static func invalid(_ what: String) -> CLIError { CLIError(description: what, code: 6) }
}

/// `--json`.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of a table.")
    var json = false
}

/// Prints a listing: a JSON array, or an aligned table (`(none)` when empty).
func printListing(_ result: PostgresResult, json: Bool) {
    if json {
        print(result.first?["json"] ?? "[]")
        return
    }
    if result.rows.isEmpty {
        print("(none)")
        return
    }
    let header = result.columns.names.map { $0.uppercased().replacingOccurrences(of: "_", with: " ") }
    let cells = result.rows.map { row in row.values.map { cell($0) } }
    let widths = header.indices.map { i in min(60, ([header[i]] + cells.map { $0[i] }).map(\.count).max() ?? 0) }
    func line(_ values: [String]) -> String {
        values.enumerated().map { i, v in
            let text = v.count > widths[i] ? String(v.prefix(widths[i] - 1)) + "…" : v
            return text.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
    print(line(header))
    for row in cells { print(line(row)) }
}

/// Prints one record as `key: value` lines, or as a JSON object.
func printRecord(_ result: PostgresResult, json: Bool, missing: String) throws {
    if json {
        let text = result.first?["json"] ?? "[]"
        guard text != "[]" else { throw CLIError.notFound(missing) }
        print(String(text.dropFirst().dropLast()))  // the one object of the array
        return
    }
    guard let row = result.first else { throw CLIError.notFound(missing) }
    let width = result.columns.names.map(\.count).max() ?? 0
    for (name, value) in zip(result.columns.names, row.values) {
        print("\(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(cell(value))")
    }
}

private func cell(_ value: String?) -> String {
    guard let value else { return "-" }
    if value.count >= 26, value.dropFirst(10).hasPrefix(" "), let date = Date(postgresTextIfTimestamp: value) {
        return ISO8601DateFormatter.string(from: date, timeZone: .gmt, formatOptions: [.withInternetDateTime])
    }
    return value.replacingOccurrences(of: "\n", with: " ")
}

extension Date {
    /// Parses a timestamptz column's text, or nil.
    init?(postgresTextIfTimestamp text: String) {
        guard let date = try? Date(postgresText: text) else { return nil }
        self = date
    }
}

/// Parses a flow run id argument.
func flowRunID(_ text: String) throws -> UUID {
    guard let id = UUID(uuidString: text) else { throw CLIError.invalid("\"\(text)\" is not a flow run id: pass the UUID `pgflow flow-run ls` shows") }
    return id
}
