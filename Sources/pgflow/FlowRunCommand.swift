// `pgflow flow-run ls|inspect|logs|cancel|retry|resume|delete`.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient
import PGFlowPostgres

struct FlowRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flow-run", abstract: "Flow runs: list, inspect, follow, cancel, retry.",
        subcommands: [List.self, Inspect.self, Logs.self, Cancel.self, Retry.self, Resume.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List flow runs: newest first, or --upcoming.",
            discussion: """
                By default: runs that started or whose start time has come, newest first (by creation; the
                future runs of schedules stay out; --upcoming lists them, soonest first). --state alone also
                shows future runs of that state. States: a type (failed) or name (TimedOut), in any case.
                Every filter reads an index, so a listing stays fast with millions of runs in the history.
                """)
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "A state type (failed) or name (timedout), any case.") var state: String?
        @Option(help: "Only runs of this flow.") var flow: String?
        @Option(help: "Only runs of this flow/deployment.") var deployment: String?
        @Option(help: "Only runs with this tag.") var tag: String?
        @Option(help: "Only runs created since (with --upcoming: due since): 30m, 2h, 1d back, or a time (2026-12-01 06:00).") var since: String?
        @Flag(name: [.customLong("upcoming"), .customLong("scheduled")], help: "The Scheduled runs still ahead, soonest first.")
        var upcoming = false
        @Option(help: "created (newest first, the default) or, with --upcoming, scheduled (soonest first, its default).") var sort: String?
        @Option(parsing: .unconditional, help: "Most runs shown.") var limit = 20
        func run() throws {
            try reportingErrors {
                var filter = PGFlowListing.FlowRunFilter()
                filter.state = state
                filter.flow = flow
                filter.deployment = deployment
                filter.tag = tag
                filter.since = try since.map { try TimeArguments.since($0) }
                filter.upcoming = upcoming
                filter.sort = sort
                filter.limit = limit
                output.printListing(try PGFlowListing.flowRuns(filter, json: output.json, on: try database.connect()))
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
                let missing = "unknown flow run \(id): `pgflow flow-run ls` lists them"
                let run = try PGFlowListing.flowRun(runID, json: output.json, on: c)
                if output.json {
                    guard let text = run.first?["json"], text != "[]" else { throw CLIError.notFound(missing) }
                    let states = try PGFlowListing.flowRunStates(runID, json: true, on: c)
                    print("{\"flow_run\": \(String(text.dropFirst().dropLast())), \"states\": \(states.first?["json"] ?? "[]")}")
                } else {
                    try output.printRecord(run, missing: missing)
                    print("\nstates:")
                    output.printListing(try PGFlowListing.flowRunStates(runID, json: false, on: c))
                }
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a flow run's logs; --follow until it ends.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The flow run's id.") var id: String
        @Flag(help: "Keep printing new lines until the run ends (exit 1 if it does not complete).") var follow = false
        func run() async throws {
            try await reportingErrors {
                let runID = try flowRunID(id)
                let c = try database.connect()
                if follow { return try await followRun(runID, logs: true, database: database, utc: output.utc, on: c) }
                let logs = try PGFlowListing.logs(flowRun: runID, after: 0, json: output.json, on: c)
                if output.json { return print(logs.first?["json"] ?? "[]") }
                for row in logs.rows {
                    let level = (row["level"] ?? "").padding(toLength: 7, withPad: " ", startingAt: 0)
                    print("\(output.timestamps.cell(row["timestamp"])) \(level) \(row["name"] ?? "") \(row["message"] ?? "")")
                }
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
        if result.status == .rejected { throw CLIError.failed("rejected: \(result.reason ?? "the run's state forbids it")") }
        print("\(result.stateName)\(result.reason.map { " (\($0))" } ?? "")")
    }
}

