// pgflow-scheduler: wiring only. Parses flags, builds the scheduler's services, runs them in a
// ServiceGroup that turns SIGTERM/SIGINT into a graceful shutdown.
import SchedulerCommand

do {
    let command = try SchedulerCommand.parse()
    try await command.execute()
} catch {
    SchedulerCommand.exit(withError: error)
}
