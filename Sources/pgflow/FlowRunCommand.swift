// `pgflow flow-run ls|inspect|logs|cancel|retry|resume|delete` and `pgflow task-run ls|inspect`.
import ArgumentParser
import Foundation
import PGFlowClient
import PGFlowPostgres

struct FlowRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flow-run", abstract: "List, inspect, follow, cancel, retry, resume and delete flow runs.",
        subcommands: [List.self, Inspect.self, Logs.self, Cancel.self, Retry.self, Resume.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List flow runs, newest scheduled first.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "A state type (FAILED) or name (Late).") var state: String?
        @Option(help: "flow/deployment") var deployment: String?
        @Option(help: "Most runs shown.") var limit = 20
        func run() throws {
            try reportingErrors {
                guard limit > 0 else { throw CLIError.invalid("--limit must be 1 or more") }
                printListing(try PGFlowListing.flowRuns(state: state, deployment: deployment, limit: limit, json: output.json,
                                                        on: try database.connect()), json: output.json)
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a flow run and its state history.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The flow run's id.") var id: String
        func run() throws {
            try reportingErrors {
                let runID = try flowRunID(id)
                let c = try database.connect()
                let run = try PGFlowListing.flowRun(runID, json: output.json, on: c)
                let states = try PGFlowListing.flowRunStates(runID, json: output.json, on: c)
                if output.json {
                    guard let text = run.first?["json"], text != "[]" else { throw CLIError.notFound("unknown flow run \(id): `pgflow flow-run ls` lists them") }
                    print("{\"flow_run\": \(String(text.dropFirst().dropLast())), \"states\": \(states.first?["json"] ?? "[]")}")
                } else {
                    try printRecord(run, json: false, missing: "unknown flow run \(id): `pgflow flow-run ls` lists them")
                    print("\nstates:")
                    printListing(states, json: false)
                }
            }
        }
    }

    struct Logs: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a flow run's logs; --follow until it ends.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The flow run's id.") var id: String
        @Flag(help: "Keep printing new lines until the run ends (exit 1 if it does not complete).") var follow = false
        func run() throws {
            try reportingErrors {
                let runID = try flowRunID(id)
                let c = try database.connect()
                guard try PGFlowListing.flowRunProgress(runID, on: c) != nil else { throw CLIError.notFound("unknown flow run \(id): `pgflow flow-run ls` lists them") }
                if follow { return try Watch.follow(runID, every: 0.5, logs: true, on: c) }
                let logs = try PGFlowListing.logs(flowRun: runID, after: 0, json: output.json, on: c)
                if output.json { return print(logs.first?["json"] ?? "[]") }
                for row in logs.rows { print("\(row["timestamp"] ?? "") \(row["name"] ?? "") \(row["message"] ?? "")") }
            }
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a flow run (its agent stops its process).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The flow run's id.") var id: String
        func run() throws { try transition(id, database) { try PGFlowClient.cancelFlowRun($0, on: $1) } }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Schedule a finished flow run again.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The flow run's id.") var id: String
        func run() throws { try transition(id, database) { try PGFlowClient.retryFlowRun($0, on: $1) } }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused flow run.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The flow run's id.") var id: String
        @Option(help: "JSON input for a run paused waiting for input (checked against the schema it declared).") var input: String?
        func run() throws {
            try transition(id, database) { id, c in
                try input.map { try PGFlowClient.resumeFlowRun(id, inputJSON: $0, on: c) } ?? PGFlowClient.resumeFlowRun(id, on: c)
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a flow run with its states, task runs and logs.",
            discussion: "Refused (exit 1) while the run is pending, running, paused or cancelling: cancel it first.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The flow run's id.") var id: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.deleteFlowRun(try flowRunID(id), on: try database.connect())
                print("deleted \(id)")
            }
        }
    }
}

/// Runs a state change and prints its outcome; a rejected one exits 1 with the reason.
private func transition(_ id: String, _ database: DatabaseOptions, _ call: (UUID, PostgresConnection) throws -> TransitionResult) throws {
    try reportingErrors {
        let result = try call(try flowRunID(id), try database.connect())
        if result.status == .rejected { throw CLIError(description: "rejected: \(result.reason ?? "the run's state forbids it")", code: 1) }
        print("\(result.stateName)\(result.reason.map { " (\($0))" } ?? "")")
    }
}

struct TaskRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task-run", abstract: "List and inspect task runs.", subcommands: [List.self, Inspect.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List task runs, newest first.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(name: .customLong("flow-run"), help: "Only this flow run's tasks.") var flowRun: String?
        @Option(help: "Most task runs shown.") var limit = 20
        func run() throws {
            try reportingErrors {
                printListing(try PGFlowListing.taskRuns(flowRun: try flowRun.map(flowRunID), limit: limit, json: output.json,
                                                        on: try database.connect()), json: output.json)
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
                try printRecord(try PGFlowListing.taskRun(taskID, json: output.json, on: try database.connect()), json: output.json,
                                missing: "unknown task run \(id): `pgflow task-run ls` lists them")
            }
        }
    }
}
