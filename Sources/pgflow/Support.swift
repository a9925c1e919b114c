// What every command shares: the database options, `--json`/`--utc`, printing, and errors as one line
// with an exit code (ErrorReport in PGFlowCLIKit decides both).
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowPostgres

/// Options every command that talks to the database shares.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "libpq URL or conninfo (default: $PGFLOW_DATABASE_URL, then the PG* variables).")
    var databaseURL: String?

    var configuration: PostgresConfiguration {
        databaseURL.map { PostgresConfiguration($0, applicationName: "pgflow-cli") } ?? .fromEnvironment(applicationName: "pgflow-cli")
    }

    func connect() throws -> PostgresConnection { try PostgresConnection(configuration: configuration) }
}

/// `--json` and `--utc`.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON (times in ISO 8601) instead of a table.")
    var json = false
    @Flag(help: "Show times in UTC instead of the local time zone.")
    var utc = false

    var timestamps: Timestamps { Timestamps(utc: utc) }

    /// Prints a listing: a JSON array, or an aligned table (`(none)` when empty).
    func printListing(_ result: PostgresResult) {
        if json { return print(result.first?["json"] ?? "[]") }
        for line in Table.lines(result, timestamps: timestamps) { print(line) }
    }

    /// Prints one record as `key  value` lines, or as a JSON object; `missing` when there is none.
    func printRecord(_ result: PostgresResult, missing: String) throws {
        if json {
            let text = result.first?["json"] ?? "[]"
            guard text != "[]" else { throw CLIError.notFound(missing) }
            return print(String(text.dropFirst().dropLast()))  // the one object of the array
        }
        guard let lines = Table.record(result, timestamps: timestamps) else { throw CLIError.notFound(missing) }
        for line in lines { print(line) }
    }
}

/// Runs `body`, printing any error as one line `pgflow: …` and exiting with its code.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        throw fail(error)
    }
}

/// The async twin of `reportingErrors`.
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        throw fail(error)
    }
}

private func fail(_ error: Error) -> ExitCode {
    let report = ErrorReport.cliError(for: error)
    FileHandle.standardError.write(Data("pgflow: \(report.description)\n".utf8))
    return ExitCode(report.code)
}

/// Progress for long work, on stderr so stdout stays the result.
func progress(_ line: String) {
    FileHandle.standardError.write(Data("\(line)\n".utf8))
}

/// Parses a flow run id argument.
func flowRunID(_ text: String) throws -> UUID {
    guard let id = UUID(uuidString: text) else { throw CLIError.invalid("\"\(text)\" is not a flow run id: pass the UUID `pgflow flow-run ls` shows") }
    return id
}
