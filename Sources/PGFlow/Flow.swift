import Foundation

/// A flow: a typed async function whose calls are flow runs in PostgreSQL, with their task runs,
/// states, logs and result. Call it directly (`try await etl(input)`) and it creates and records its
/// flow run (local mode, no agent needed); call it inside another flow and it is a subflow, a child
/// run linked to a task run of the parent; register it in an agent (`etl.agentFlow`) and deployments
/// with entrypoint `swift:<name>` run it, attached to the run the agent claimed.
///
/// ```swift
/// let etl = Flow("etl", version: "2", runName: "etl-{day}", retries: RetryPolicy(count: 1)) { (p: Params) in
///     try await store(process(fetch(p.day)))
/// }
/// ```
public struct Flow<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    /// A hook: called with what is known about the run when it reaches a state.
    public typealias Hook = @Sendable (FlowRunInfo) async -> Void

    /// The flow's name (`pgflow.flows.name`; no `/`).
    public let name: String
    /// What the flow does.
    public var description: String?
    /// The flow's version (logged at the start of each run).
    public var version: String?
    /// Tags of its flow runs (tag concurrency limits `tag:<tag>` apply).
    public var tags: [String]
    /// The run name template: `{name}` placeholders are filled from the parameters' top-level fields;
    /// nil: a random adjective-animal name.
    public var runName: String?
    /// How failed runs are retried (local mode; runs of deployments use the deployment's policy).
    public var retries: RetryPolicy
    /// Longer runs are cancelled and fail as TimedOut (local mode; agents apply the deployment's timeout).
    public var timeout: Duration?
    /// Records `print` output (PGFlow's `print`) as log lines of the run.
    public var logPrints: Bool
    /// Called when a run starts (each attempt).
    public var onRunning: [Hook]
    /// Called once when a run completed.
    public var onCompletion: [Hook]
    /// Called once when a run failed for good (its retries spent).
    public var onFailure: [Hook]
    /// Called once when a run was cancelled.
    public var onCancellation: [Hook]
    /// Called once when a run was found Crashed (for example marked so by the reaper) at its end.
    public var onCrashed: [Hook]
    let body: @Sendable (Input) async throws -> Output

    /// Defines a flow.
    public init(
        _ name: String, description: String? = nil, version: String? = nil, tags: [String] = [], runName: String? = nil,
        retries: RetryPolicy = .none, timeout: Duration? = nil, logPrints: Bool = false,
        onRunning: [Hook] = [], onCompletion: [Hook] = [], onFailure: [Hook] = [], onCancellation: [Hook] = [],
        onCrashed: [Hook] = [],
        _ body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.name = name
        self.description = description
        self.version = version
        self.tags = tags
        self.runName = runName
        self.retries = retries
        self.timeout = timeout
        self.logPrints = logPrints
        self.onRunning = onRunning
        self.onCompletion = onCompletion
        self.onFailure = onFailure
        self.onCancellation = onCancellation
        self.onCrashed = onCrashed
        self.body = body
    }

    /// Runs the flow and returns its output; throws the flow's error when it does not complete.
    /// Inside a flow this is a subflow; elsewhere it creates a flow run (local mode).
    public func callAsFunction(_ input: Input) async throws -> Output {
        if let parent = FlowRunScope.current { return try await runAsSubflow(input, parent: parent) }
        return try await run(input).get()
    }

    /// Runs the flow in local mode (a new flow run) and returns how it ended, without throwing for a
    /// flow that failed. Throws only when the database cannot record the run.
    /// In a process an agent started for a command deployment (`PGFLOW_FLOW_RUN_ID` is set), the first
    /// such call attaches to that run instead.
    public func run(_ input: Input, engine: PGFlowEngine? = nil) async throws -> FlowRunResult<Output> {
        let engine = try engine ?? PGFlowEngine.resolve()
        if let claimed = CommandRun.take() { return await runInCommandRun(input, claimed, engine: engine) }
        return try await runLocal(input, engine: engine, parentTaskRunID: nil)
    }

    /// The same flow with other settings.
    public func with(_ change: (inout Flow) -> Void) -> Flow {
        var copy = self
        change(&copy)
        return copy
    }
}

extension Flow where Input == Nothing {
    /// Defines a flow that takes no parameters.
    public init(
        _ name: String, description: String? = nil, version: String? = nil, tags: [String] = [], runName: String? = nil,
        retries: RetryPolicy = .none, timeout: Duration? = nil, logPrints: Bool = false,
        _ body: @escaping @Sendable () async throws -> Output
    ) {
        self.init(name, description: description, version: version, tags: tags, runName: runName, retries: retries,
                  timeout: timeout, logPrints: logPrints) { (_: Nothing) in try await body() }
    }

    /// Runs the flow.
    public func callAsFunction() async throws -> Output { try await self(Nothing()) }
}

/// What flow hooks learn about a run.
public struct FlowRunInfo: Sendable {
    /// The flow's name.
    public let flowName: String
    /// The flow run's id.
    public let flowRunID: UUID
    /// Which attempt this is (1 on the first).
    public let runCount: Int
    /// The state it reached (`Running`, `Completed`, `Failed`, `TimedOut`, `Cancelled`, `Crashed`).
    public let stateName: String
    /// Why, for a run that did not complete.
    public let message: String?
}

/// How a flow run ended.
public struct FlowRunResult<Output: Sendable>: Sendable {
    /// The flow run's id.
    public let flowRunID: UUID
    /// Its final state's name (`Completed`, `Failed`, `TimedOut`, `Cancelled`, `Crashed`).
    public let stateName: String
    /// How many attempts ran.
    public let runCount: Int
    /// The output, when it completed.
    public let value: Output?
    /// The error that ended it, when it did not complete.
    public let error: (any Error)?

    /// The output, or the error that ended the run.
    public func get() throws -> Output {
        if let value, stateName == "Completed" { return value }
        throw error ?? FlowRunError.rejected("flow run \(flowRunID.uuidString.lowercased()) ended \(stateName)")
    }
}
