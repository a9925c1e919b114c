// Deployer: applies a parsed deployment file in one transaction: each deployment is created or updated
// (pgflow.create_deployment), its secret environment set and its schedules synced. Nothing is written unless all of it is.
import Foundation
import PGFlowClient
import PGFlowPostgres

/// A deployment the database refused, with the file line it came from.
public struct DeployError: Error, CustomStringConvertible {
    /// `file:line: flow/deployment`.
    public let location: String
    /// What PostgreSQL said.
    public let error: PostgresError
    /// One line.
    public var description: String { "\(location): \(error.message)" }
}

/// Deploys files.
public enum Deployer {
    /// What one deployment's deploy did.
    public struct Outcome: Sendable, Equatable {
        /// `flow/deployment`.
        public var name: String
        /// Schedules added.
        public var added: Int
        /// Schedules removed.
        public var removed: Int
    }

    /// Deploys every entry in one transaction; a refused entry throws `DeployError` and nothing stays.
    /// Deployments go first (their triggers, then the automations, may name any of them); automations
    /// are created or replaced by name.
    public static func deploy(_ entries: [DeploymentEntry], automations: [AutomationEntry] = [], file: String,
                              on c: PostgresConnection) throws -> [Outcome] {
        try c.withTransaction { c in
            let outcomes = try entries.map { entry in
                do {
                    try PGFlowClient.createDeployment(entry.spec, on: c)
                    _ = try PGFlowClient.setDeploymentSecretEnvironment(entry.name, envJSON: entry.secretEnvironmentJSON, on: c)
                    let plan = try ScheduleSync.apply(deployment: entry.name, wanted: entry.schedules, on: c)
                    return Outcome(name: entry.name, added: plan.added.count, removed: plan.removed.count)
                } catch let error as PostgresError where error.kind == .server {
                    throw DeployError(location: "\(file):\(entry.line): \(entry.name)", error: error)
                }
            }
            for entry in entries {
                do {
                    try PGFlowClient.setDeploymentTriggers(deployment: entry.name, triggersJSON: entry.triggersJSON, on: c)
                } catch let error as PostgresError where error.kind == .server {
                    throw DeployError(location: "\(file):\(entry.line): \(entry.name) triggers", error: error)
                }
            }
            for a in automations {
                do {
                    try PGFlowClient.createAutomation(name: a.name, triggerJSON: a.triggerJSON, actionsJSON: a.actionsJSON,
                                                      description: a.description, replace: true, source: "file", on: c)
                    try PGFlowClient.setAutomationPaused(name: a.name, paused: !a.enabled, on: c)
                } catch let error as PostgresError where error.kind == .server {
                    throw DeployError(location: "\(file):\(a.line): automation \(a.name)", error: error)
                }
            }
            return outcomes
        }
    }
}
