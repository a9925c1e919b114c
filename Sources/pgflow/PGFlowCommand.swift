// pgflow: the command line. Wiring only: parse arguments, call PGFlowClient, print.
import ArgumentParser
import PGFlowClient

@main
struct PGFlowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgflow",
        abstract: "pgflow: workflows orchestrated by PostgreSQL.",
        subcommands: [DatabaseCommand.self]
    )
}
