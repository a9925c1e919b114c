// pgflow: the command line. Wiring only: parse arguments, call PGFlowCLIKit / PGFlowDeploy /
// PGFlowClient, print.
import ArgumentParser
import PGFlowClient

@main
struct PGFlowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgflow",
        abstract: "pgflow: workflows orchestrated by PostgreSQL.",
        discussion: """
            Database: --database-url, else $PGFLOW_DATABASE_URL, else libpq's PG* variables.
            Exit codes: 0 done, 1 failed (a watched run did not complete), 2 not available,
            3 database unreachable, 4 migrations pending, 5 not found, 6 invalid input, 64 usage.
            Shell completion: pgflow --generate-completion-script bash|zsh|fish
            """,
        version: "pgflow 0.2.0 (schema version \(SchemaMigrator.embeddedMigrations.last?.version ?? 0))",
        subcommands: [
            DatabaseCommand.self, DeployCommand.self, DeploymentCommand.self, FlowCommand.self, FlowRunCommand.self,
            TaskRunCommand.self, ScheduleCommand.self, WorkQueueCommand.self, ConcurrencyLimitCommand.self, AgentGroup.self,
            SchedulerGroup.self, APIGroup.self,
            ArtifactCommand.self, VariableCommand.self, SecretCommand.self, BlockCommand.self,
            EventCommand.self, AutomationCommand.self, NotificationCommand.self,
        ]
    )
}
