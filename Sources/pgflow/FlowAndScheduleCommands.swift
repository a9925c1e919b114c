// `pgflow flow ls` and `pgflow schedule ls|pause|resume|delete`.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient

struct FlowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "flow", abstract: "List flows.", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List flows with their deployments.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.flows(json: output.json, on: try database.connect())) }
        }
    }
}

struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "List, pause, resume and delete deployment schedules.",
        discussion: "Schedules are created by `pgflow deploy` from pgflow.yaml; a later deploy makes them what the file says again.",
        subcommands: [List.self, Pause.self, Resume.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List schedules with their next run.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Only this flow/deployment's.") var deployment: String?
        func run() throws {
            try reportingErrors {
                output.printListing(try PGFlowListing.schedules(deployment: deployment, json: output.json, on: try database.connect()))
            }
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a schedule: its future scheduled runs are removed.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The schedule's id (`pgflow schedule ls`).") var id: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.setDeploymentScheduleActive(try scheduleID(id), active: false, on: try database.connect())
                print("paused schedule \(id)")
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused schedule (the scheduler creates its runs again).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The schedule's id (`pgflow schedule ls`).") var id: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.setDeploymentScheduleActive(try scheduleID(id), active: true, on: try database.connect())
                print("resumed schedule \(id)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a schedule and its future scheduled runs.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The schedule's id (`pgflow schedule ls`).") var id: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.deleteDeploymentSchedule(try scheduleID(id), on: try database.connect())
                print("deleted schedule \(id)")
            }
        }
    }
}

private func scheduleID(_ text: String) throws -> UUID {
    guard let id = UUID(uuidString: text) else { throw CLIError.invalid("\"\(text)\" is not a schedule id: pass the UUID `pgflow schedule ls` shows") }
    return id
}
