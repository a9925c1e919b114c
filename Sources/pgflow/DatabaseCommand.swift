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

/// Runs `body`, printing a user-facing error as one line and exiting with a code that says what
/// went wrong (see Output.swift).
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    func fail(_ line: String, _ code: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("pgflow: \(line)\n".utf8))
        return ExitCode(code)
    }
    do {
        return try body()
    } catch let error as CLIError {
        throw fail(error.description, error.code)
    } catch var error as PostgresError {
        if error.message.hasPrefix("pgflow: ") { error.message.removeFirst(8) }
        switch error.sqlState {
        case _ where error.kind == .connection: throw fail(error.description, 3)
        case "42883"?:  // undefined_function: the database has an older pgflow schema
            throw fail("this database's pgflow schema lacks what this command needs (\(error.message)); run `pgflow db upgrade` with a pgflow that has it", 2)
        case "3F000"?, "42P01"?: throw fail("the database has no pgflow schema: run `pgflow db upgrade`", 2)
        case "P0002"?: throw fail(error.description, 5)
        case let state? where state.hasPrefix("22") || state.hasPrefix("23"): throw fail(error.description, 6)
        default: throw fail(error.description, 1)
        }
    } catch let error as PGFlowError {
        if case .invalidInput = error { throw fail(error.description, 6) }
        throw fail(error.description, 1)
    }
}

struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Manage the pgflow schema in a database.",
        subcommands: [Upgrade.self, Status.self, Reset.self])

    struct Upgrade: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the pgflow schema, or apply the migrations it lacks (safe to run concurrently).")
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingErrors {
                let migrator = SchemaMigrator()
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
                let migrator = SchemaMigrator()
                let status = try migrator.status(try database.connect())
                print("applied: \(status.applied.isEmpty ? "none (no pgflow schema)" : status.applied.map(String.init).joined(separator: ", "))")
                print("pending: \(status.pending.isEmpty ? "none" : status.pending.map { "\($0.version)_\($0.name)" }.joined(separator: ", "))")
                if !status.pending.isEmpty { throw ExitCode(4) }
            }
        }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop schema pgflow with all its data and apply the current schema afresh.",
            discussion: "Asks for --yes: everything pgflow stored in this database is deleted.")
        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Confirm that all pgflow data in this database may be deleted.")
        var yes = false

        func run() throws {
            try reportingErrors {
                guard yes else { throw CLIError.invalid("`db reset` deletes every flow run, deployment and log: add --yes to confirm") }
                let migrator = SchemaMigrator()
                let applied = try migrator.reset(try database.connect())
                print("schema pgflow dropped and re-created (\(applied.count) migrations)")
            }
        }
    }
}
