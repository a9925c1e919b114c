// pgflow-agent: wiring only. Parses flags, builds the Agent service, runs it in a ServiceGroup that
// turns SIGTERM/SIGINT into a graceful shutdown.
import AgentCommand

do {
    let command = try AgentCommand.parse()
    try await command.execute()
} catch {
    AgentCommand.exit(withError: error)
}
