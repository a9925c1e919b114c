import ArgumentParser
import Foundation
import PGFlowClient
import PGFlowPostgres

/// Options every command that talks to the database shares.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "libpq URL or conninfo (default: $PGFLOW_DATABASE_URL, then the PG* variables).")
    var databaseURL: String?

    func connect() throws -> PostgresConnection {
        let configuration = databaseURL.map { PostgresConfiguration($0, applicationName: "pgflow-cli") }
            ?? .fromEnvironment(applicationName: "pgflow-cli")
        return try PostgresConnection(configuration: configuration)
    }
}

/// Runs `body`, printing a user-facing error as one line and exiting non-zero.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as PostgresError {
        FileHandle.standardError.write(Data("pgflow: \(error)\n".utf8))
        throw ExitCode(error.kind == .connection ? 3 : 1)
    } catch let error as PGFlowError {
        FileHandle.standardError.write(Data("pgflow: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Manage the pgflow schema in a database.",
        subcommands: [Upgrade.self, Status.self])

    struct Upgrade: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply sql/schema.sql or the missing migrations (safe to run concurrently).")
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingErrors {
                let migrator = try SchemaMigrator(sqlDirectory: SchemaMigrator.locateSQLDirectory())
                let connection = try database.connect()
                let applied = try migrator.upgrade(connection) { print($0) }
                print(applied.isEmpty ? "schema is current" : "applied \(applied.count) migration(s); schema is current")
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show applied and pending migrations.")
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingErrors {
                let migrator = try SchemaMigrator(sqlDirectory: SchemaMigrator.locateSQLDirectory())
                let status = try migrator.status(try database.connect())
                print("applied: \(status.applied.isEmpty ? "none (no pgflow schema)" : status.applied.map(String.init).joined(separator: ", "))")
                print("pending: \(status.pending.isEmpty ? "none" : status.pending.map { "\($0.version)_\($0.name)" }.joined(separator: ", "))")
                if !status.pending.isEmpty { throw ExitCode(4) }
            }
        }
    }
}
