// `pgflow task-run ls|inspect`.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient

struct TaskRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task-run", abstract: "List and inspect task runs.", subcommands: [List.self, Inspect.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List task runs, newest first.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(name: .customLong("flow-run"), help: "Only this flow run's tasks.") var flowRun: String?
        @Option(parsing: .unconditional, help: "Most task runs shown.") var limit = 20
        func run() throws {
            try reportingErrors {
                guard limit >= 1 else { throw CLIError.invalid("--limit must be 1 or more, got \(limit)") }
                output.printListing(try PGFlowListing.taskRuns(flowRun: try flowRun.map(flowRunID), limit: limit, json: output.json,
                                                               on: try database.connect()))
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a task run.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The task run's id.") var id: String
        func run() throws {
            try reportingErrors {
                guard let taskID = UUID(uuidString: id) else { throw CLIError.invalid("\"\(id)\" is not a task run id: pass the UUID `pgflow task-run ls` shows") }
                try output.printRecord(try PGFlowListing.taskRun(taskID, json: output.json, on: try database.connect()),
                                       missing: "unknown task run \(id): `pgflow task-run ls` lists them")
            }
        }
    }
}
