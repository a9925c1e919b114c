// pgflow: the command line. Wiring only: parse arguments, call PGFlowClient, print.
import ArgumentParser
import PGFlowClient

@main
struct PGFlowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgflow",
        abstract: "pgflow: workflows orchestrated by PostgreSQL.",
        discussion: """
            Database: --database-url, else $PGFLOW_DATABASE_URL, else the libpq PG* variables.
            Exit codes: 0 done; 1 failed (or the watched run did not complete); 2 not available; 3 database
            unreachable; 4 migrations pending; 5 not found; 6 invalid input; 64 bad usage.
            """,
        subcommands: [
            DatabaseCommand.self, DeployCommand.self, DeploymentCommand.self, FlowRunCommand.self, TaskRunCommand.self,
            WorkQueueCommand.self, ConcurrencyLimitCommand.self, AgentGroup.self, SchedulerGroup.self, APIGroup.self,
            ArtifactCommand.self, VariableCommand.self, SecretCommand.self, BlockCommand.self,
        ]
    )
}
