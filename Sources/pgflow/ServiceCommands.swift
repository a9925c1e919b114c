// `pgflow agent start|ls`, `pgflow scheduler start`, `pgflow api start`: the long-running processes.
import AgentCommand
import ArgumentParser
import Foundation
import PGFlowClient
import SchedulerCommand

struct AgentGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent", abstract: "Run an agent, or list agents.", subcommands: [Start.self, List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List online agents: queues, last heartbeat, runs held (--all: offline ones too).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Flag(help: "Also agents that went offline.") var all = false
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.agents(all: all, json: output.json, on: try database.connect())) }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Claim and run flow runs (same flags as pgflow-agent).")
        @OptionGroup var agent: AgentCommand
        func run() async throws { try await agent.execute() }
    }
}

struct SchedulerGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler", abstract: "Run a scheduler.", subcommands: [Start.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Materialise schedules and run maintenance (same flags as pgflow-scheduler).")
        @OptionGroup var scheduler: SchedulerCommand
        func run() async throws { try await scheduler.execute() }
    }
}

struct APIGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api", abstract: "The HTTP API: its tokens (the server is the pgflow-api executable).",
        subcommands: [Start.self, APITokenCommand.self])

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run `pgflow-api` instead: exits 2.")
        func run() throws {
            FileHandle.standardError.write(Data("pgflow: the HTTP API is its own executable so the CLI does not carry the HTTP server: run `pgflow-api --host 127.0.0.1 --port 4200` (see pgflow-api --help)\n".utf8))
            throw ExitCode(2)
        }
    }
}
