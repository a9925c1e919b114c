// `pgflow deploy`: registers the deployments of a pgflow.yaml (idempotent: run it again after edits).
import ArgumentParser
import Foundation
import PGFlowClient
import PGFlowPostgres

struct DeployCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Create or update the deployments and schedules listed in a pgflow.yaml.",
        discussion: "Validates the whole file first (errors name the line), then applies it in one transaction.")
    @OptionGroup var database: DatabaseOptions
    @Option(name: [.short, .long], help: "The deployment file.")
    var file = "pgflow.yaml"
    @Flag(name: .customLong("dry-run"), help: "Only validate the file.")
    var dryRun = false

    func run() throws {
        try reportingErrors {
            let entries = try DeploymentFile.load(path: file)
            if dryRun {
                print("\(file): \(entries.count) deployment(s), \(entries.map(\.schedules.count).reduce(0, +)) schedule(s), valid")
                return
            }
            let connection = try database.connect()
            var done: [String] = []
            try connection.withTransaction { c in
                for entry in entries {
                    let name = "\(entry.spec.flow)/\(entry.spec.name)"
                    do {
                        try PGFlowClient.createDeployment(entry.spec, on: c)
                        let (added, removed) = try syncSchedules(name, entry.schedules, on: c)
                        done.append("deployed \(name)\(added + removed > 0 ? " (schedules: \(added) added, \(removed) removed)" : "")")
                    } catch var error as PostgresError where error.kind == .server {
                        if error.message.hasPrefix("pgflow: ") { error.message.removeFirst(8) }
                        throw CLIError.invalid("\(file):\(entry.line): \(name): \(error)")
                    }
                }
            }
            for line in done { print(line) }  // only once the transaction committed
        }
    }

    /// Adds the file's schedules the deployment lacks and removes those the file no longer lists.
    private func syncSchedules(_ deployment: String, _ wanted: [ScheduleSpec], on c: PostgresConnection) throws -> (Int, Int) {
        var existing = try PGFlowClient.deploymentScheduleKeys(deployment: deployment, on: c)
        var added = 0
        for spec in wanted {
            let key = try PGFlowClient.scheduleKey(spec, on: c)
            if let i = existing.firstIndex(where: { $0.key == key }), spec.anchorDate == nil {
                existing.remove(at: i)
                continue
            }
            try PGFlowClient.createDeploymentSchedule(deployment: deployment, spec, on: c)
            added += 1
        }
        for stale in existing { try PGFlowClient.deleteDeploymentSchedule(stale.id, on: c) }
        return (added, existing.count)
    }
}
