import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient
import PGFlowPostgres

struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Manage the pgflow schema in a database.",
        subcommands: [Upgrade.self, Status.self, Prune.self, Reset.self])

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

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete finished runs older than an age, with their states, task runs, logs and results.",
            discussion: "Works in batches (one short transaction each) and shows progress; the scheduler does the same every 10 minutes (--retention-days). History is kept in UTC weeks (Monday to Monday) and removed a week at a time: a run goes between --older-than and --older-than + 7 days after it ended.")
        @OptionGroup var database: DatabaseOptions
        @Option(name: .customLong("older-than"), help: "Runs that ended longer ago than this: 30d, 12h, 90m (removed by whole UTC weeks: up to 7 days later).") var olderThan: String
        @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Runs per transaction.") var batchSize = 1000

        func run() throws {
            try reportingErrors {
                guard let seconds = TimeArguments.seconds(olderThan) else {
                    throw CLIError.invalid("bad --older-than \"\(olderThan)\": use an age such as 30d, 12h or 90m")
                }
                let c = try database.connect()
                var total = 0
                while true {
                    let deleted = try PGFlowClient.deleteOldRuns(olderThan: seconds, batch: batchSize, now: Date(), on: c)
                    total += deleted
                    if deleted > 0 { progress("deleted \(total) run(s) so far…") }
                    if deleted < batchSize { break }
                }
                print("deleted \(total) finished run(s) older than \(olderThan)")
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
