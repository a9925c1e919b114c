import Foundation

/// An error the SDK reports, printable as one line that says what happened and what to do.
public enum FlowRunError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A task run ended Failed (after its retries); `message` is the last failure.
    case taskFailed(task: String, taskRunID: UUID, message: String)
    /// A task run timed out (after its retries).
    case taskTimedOut(task: String, taskRunID: UUID, seconds: Double)
    /// A flow run ended Failed, TimedOut, Cancelled or Crashed.
    case flowFailed(flow: String, flowRunID: UUID, state: String, message: String)
    /// A result or input is larger than the engine's limit.
    case payloadTooLarge(what: String, bytes: Int, limit: Int)
    /// A value could not be encoded to or decoded from JSON.
    case encoding(String)
    /// The database refused an orchestration step (the reason is the SQL function's).
    case rejected(String)
    /// A paused flow run was not resumed before its timeout.
    case pauseTimedOut(flowRunID: UUID, seconds: Double)
    /// A feature needs SQL support that this database's schema lacks.
    case unsupported(String)
    /// No database is configured for a flow run outside an agent.
    case noDatabase

    /// One line.
    public var description: String {
        switch self {
        case let .taskFailed(task, id, message):
            return "task \(task) failed (task run \(id.uuidString.lowercased())): \(message)"
        case let .taskTimedOut(task, id, seconds):
            return "task \(task) timed out after \(seconds) s (task run \(id.uuidString.lowercased())); raise its timeout or make it faster"
        case let .flowFailed(flow, id, state, message):
            return "flow \(flow) ended \(state) (flow run \(id.uuidString.lowercased())): \(message)"
        case let .payloadTooLarge(what, bytes, limit):
            return "\(what) is \(bytes) bytes of JSON, over the limit of \(limit) bytes: set PGFLOW_RESULT_STORAGE to a directory (results) or raise PGFlowEngine.maxPayloadBytes"
        case .encoding(let message):
            return "cannot convert a value to or from JSON: \(message)"
        case .rejected(let reason):
            return "pgflow refused the step: \(reason)"
        case let .pauseTimedOut(id, seconds):
            return "flow run \(id.uuidString.lowercased()) was not resumed within \(seconds) s (resume with SELECT pgflow.resume_flow_run(id)); it failed as TimedOut"
        case .unsupported(let message):
            return message
        case .noDatabase:
            return "no pgflow database for this flow run: set PGFLOW_DATABASE_URL, call PGFlowEngine.bootstrap(databaseURL:), or run inside engine.activate { }"
        }
    }
}
