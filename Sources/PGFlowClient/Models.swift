import Foundation
import PGFlowPostgres

/// A state type of the state machine (`pgflow.state_type`); the last four are terminal.
public enum StateType: String, Sendable, Codable, CaseIterable {
    case scheduled = "SCHEDULED", pending = "PENDING", running = "RUNNING", paused = "PAUSED"
    case cancelling = "CANCELLING", completed = "COMPLETED", failed = "FAILED", cancelled = "CANCELLED", crashed = "CRASHED"

    /// True for COMPLETED, FAILED, CANCELLED and CRASHED.
    public var isTerminal: Bool { [.completed, .failed, .cancelled, .crashed].contains(self) }
}

/// A proposed state: its type, optional name (for example `TimedOut` for a FAILED state), message and result.
public struct StateProposal: Sendable {
    /// The run the proposal is for.
    public var runID: UUID
    /// The state type.
    public var type: StateType
    /// The state name; nil means the type's default name.
    public var name: String?
    /// A message kept with the state (why it failed, for example).
    public var message: String?
    /// A JSON result to keep with a COMPLETED state.
    public var resultJSON: String?
    /// A client id that makes a retried call idempotent.
    public var transitionID: UUID?

    /// Creates a proposal.
    public init(runID: UUID, type: StateType, name: String? = nil, message: String? = nil, resultJSON: String? = nil, transitionID: UUID? = nil) {
        self.runID = runID
        self.type = type
        self.name = name
        self.message = message
        self.resultJSON = resultJSON
        self.transitionID = transitionID
    }
}

/// What a transition did (`pgflow.transition_result`).
public struct TransitionResult: Sendable, Equatable {
    /// ACCEPTED, REDIRECTED, WAIT, REJECTED or DUPLICATE.
    public enum Status: String, Sendable {
        case accepted = "ACCEPTED", redirected = "REDIRECTED", wait = "WAIT", rejected = "REJECTED", duplicate = "DUPLICATE"
    }
    /// The run.
    public let runID: UUID
    /// What happened.
    public let status: Status
    /// Why, for anything but ACCEPTED.
    public let reason: String?
    /// The run's state type after the call.
    public let stateType: StateType
    /// The run's state name after the call.
    public let stateName: String
    /// How many times the run has started (counting a start this transition made).
    public let runCount: Int

    init(row: PostgresRow) throws {
        try self.init(row: row, at: Columns(row.columns))
    }

    /// Where a transition result's columns are: looked up once per result (a batch's rows share them).
    struct Columns {
        let runID, status, reason, stateType, stateName, runCount: Int

        init(_ columns: PostgresColumns) throws {
            let at = columns.require
            (runID, status, reason) = (try at("run_id"), try at("status"), try at("reason"))
            (stateType, stateName, runCount) = (try at("state_type"), try at("state_name"), try at("run_count"))
        }
    }

    init(row: PostgresRow, at c: Columns) throws {
        runID = try row.decode(UUID.self, at: c.runID)
        guard let status = Status(rawValue: try row.decode(String.self, at: c.status)),
              let type = StateType(rawValue: try row.decode(String.self, at: c.stateType)) else {
            throw PostgresError(kind: .decoding, message: "unexpected transition result \(row.values)")
        }
        self.status = status
        self.reason = try row.decode(String?.self, at: c.reason)
        stateType = type
        stateName = try row.decode(String.self, at: c.stateName)
        runCount = try row.decode(Int?.self, at: c.runCount) ?? 0
    }

    /// The results of a batch transition.
    static func rows(of result: PostgresResult) throws -> [TransitionResult] {
        if result.rows.isEmpty { return [] }
        let columns = try Columns(result.columns)
        return try result.rows.map { try TransitionResult(row: $0, at: columns) }
    }
}

/// A flow run's name and current state.
public struct FlowRunSummary: Sendable, Equatable {
    /// The run's id.
    public let id: UUID
    /// The run's name.
    public let name: String
    /// Its current state type.
    public let stateType: StateType
    /// Its current state name.
    public let stateName: String
}

/// A run an agent claimed: what it needs to execute it.
public struct ClaimedFlowRun: Sendable {
    /// The run's id.
    public let id: UUID
    /// The run's name.
    public let name: String
    /// The flow's name.
    public let flowName: String
    /// The deployment's id (nil for ad-hoc runs).
    public let deploymentID: UUID?
    /// The deployment's name (nil for ad-hoc runs).
    public let deploymentName: String?
    /// What to run: `swift:NAME` for a flow registered in the agent, anything else a command line.
    public let entrypoint: String?
    /// The run's parameters as JSON text (an object).
    public let parametersJSON: String
    /// How many times the run has started (this start included when the claim started it).
    public let runCount: Int
    /// The state the claim left it in: PENDING, or RUNNING when the claim started it.
    public let stateType: StateType
    /// Seconds after which the run is stopped and fails as TimedOut (nil: no limit).
    public let timeoutSeconds: Double?
    /// Whether `run_deployment` pushed the run to the agent (from a notification, or returned by
    /// `claim_and_offer` because the agent had not named it as seen).
    public let pushed: Bool
    /// When the run was pushed, in the database's clock (seconds since 1970; notifications only).
    public let pushedAt: Double?

    /// Where a claim's columns are in its result: looked up once per result, not once per row and column.
    struct Columns {
        let id, name, flowName, deploymentID, deploymentName, entrypoint, parameters, runCount, stateType: Int
        let timeoutSeconds, pushed: Int?

        init(_ columns: PostgresColumns) throws {
            let at = columns.require
            (id, name, flowName) = (try at("flow_run_id"), try at("flow_run_name"), try at("flow_name"))
            (deploymentID, deploymentName, entrypoint) = (try at("deployment_id"), try at("deployment_name"), try at("entrypoint"))
            (parameters, runCount, stateType) = (try at("parameters"), try at("run_count"), try at("state_type"))
            (timeoutSeconds, pushed) = (columns.position(of: "timeout_seconds"), columns.position(of: "pushed"))
        }
    }

    init(row: PostgresRow, at c: Columns) throws {
        id = try row.decode(UUID.self, at: c.id)
        name = try row.decode(String.self, at: c.name)
        flowName = try row.decode(String.self, at: c.flowName)
        deploymentID = try row.decode(UUID?.self, at: c.deploymentID)
        deploymentName = try row.decode(String?.self, at: c.deploymentName)
        entrypoint = try row.decode(String?.self, at: c.entrypoint)
        parametersJSON = try row.decode(String.self, at: c.parameters)
        runCount = try row.decode(Int.self, at: c.runCount)
        stateType = StateType(rawValue: try row.decode(String.self, at: c.stateType)) ?? .pending
        timeoutSeconds = try c.timeoutSeconds.map { try row.decode(Double?.self, at: $0) } ?? nil
        pushed = try c.pushed.map { try row.decode(Bool.self, at: $0) } ?? false
        pushedAt = nil
    }

    /// The runs of a claim's result.
    static func rows(of result: PostgresResult) throws -> [ClaimedFlowRun] {
        if result.rows.isEmpty { return [] }
        let columns = try Columns(result.columns)
        return try result.rows.map { try ClaimedFlowRun(row: $0, at: columns) }
    }

    /// A run pushed to the agent: the JSON `pgflow.run_deployment` NOTIFYs on the agent's channel (the
    /// claim's columns by name; `parameters` as JSON text). Nil when the payload is not such an object.
    public init?(pushPayload: String) {
        struct Payload: Decodable {
            let flow_run_id: UUID
            let flow_run_name: String
            let flow_name: String
            let deployment_id: UUID?
            let deployment_name: String?
            let entrypoint: String?
            let parameters: String
            let run_count: Int
            let state_type: String
            let timeout_seconds: Double?
            let pushed_at: Double
        }
        guard let p = try? JSONDecoder().decode(Payload.self, from: Data(pushPayload.utf8)) else { return nil }
        id = p.flow_run_id
        name = p.flow_run_name
        flowName = p.flow_name
        deploymentID = p.deployment_id
        deploymentName = p.deployment_name
        entrypoint = p.entrypoint
        parametersJSON = p.parameters
        runCount = p.run_count
        stateType = StateType(rawValue: p.state_type) ?? .running
        timeoutSeconds = p.timeout_seconds
        pushed = true
        pushedAt = p.pushed_at
    }
}

/// One log line for `pgflow.write_logs`.
public struct LogLine: Sendable {
    /// The flow run it belongs to.
    public var flowRunID: UUID
    /// The task run, if any.
    public var taskRunID: UUID?
    /// 10 debug, 20 info, 30 warning, 40 error, 50 critical.
    public var level: Int
    /// The logger's name (`stdout`, `stderr`, `pgflow.agent`, …).
    public var name: String
    /// The text.
    public var message: String
    /// When it was written.
    public var timestamp: Date

    /// Creates a line.
    public init(flowRunID: UUID, taskRunID: UUID? = nil, level: Int, name: String, message: String, timestamp: Date = Date()) {
        self.flowRunID = flowRunID
        self.taskRunID = taskRunID
        self.level = level
        self.name = name
        self.message = message
        self.timestamp = timestamp
    }
}
