// `pgflow deploy`: registers the deployments of a pgflow.yaml (idempotent: run it again after edits).
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowDeploy

struct DeployCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Apply a pgflow.yaml: deployments and schedules.",
        discussion: """
            Validates the whole file first (errors name the line), then applies it in one transaction.
            Unchanged schedules are kept with their future runs; changed ones are replaced.
            """)
    @OptionGroup var database: DatabaseOptions
    @Option(name: [.short, .long], help: "The deployment file.")
    var file = "pgflow.yaml"
    @Flag(name: .customLong("dry-run"), help: "Only validate the file.")
    var dryRun = false

    func run() throws {
        try reportingErrors {
            let entries = try DeploymentFile.load(path: file)
            let automations = try DeploymentFile.automations((try? String(contentsOfFile: file, encoding: .utf8)) ?? "", file: file)
            if dryRun {
                print("\(file): \(entries.count) deployment(s), \(entries.map(\.schedules.count).reduce(0, +)) schedule(s), \(automations.count) automation(s), valid")
                return
            }
            let outcomes = try Deployer.deploy(entries, automations: automations, file: file, on: try database.connect())
            for o in outcomes {  // only once the transaction committed
                print("deployed \(o.name) (schedules: \(o.added) added, \(o.removed) removed)")
            }
            for a in automations { print("deployed automation \(a.name)\(a.enabled ? "" : " (paused)")") }
        }
    }
}
