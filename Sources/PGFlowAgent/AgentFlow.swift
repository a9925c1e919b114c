import Foundation
import PGFlow
import PGFlowClient

/// A Swift flow an agent runs in-process (no process spawn). Deployments name it with the
/// entrypoint `swift:NAME`.
public struct AgentFlow: Sendable {
    /// The name after `swift:` in a deployment's entrypoint.
    public let name: String
    /// Runs the flow; returns its result as JSON text (or nil). Throwing fails the run; cancellation
    /// (the run was cancelled or timed out) must be honoured cooperatively.
    public let body: @Sendable (FlowRunContext) async throws -> String?

    /// Registers `body` under `name`.
    public init(name: String, body: @escaping @Sendable (FlowRunContext) async throws -> String?) {
        self.name = name
        self.body = body
    }
}

/// What an in-process flow gets: its run, parameters, and a logger into `pgflow.logs`.
public struct FlowRunContext: Sendable {
    /// The flow run's id.
    public let flowRunID: UUID
    /// The flow run's name.
    public let flowRunName: String
    /// The parameters, as JSON text (an object).
    public let parametersJSON: String
    /// How many times this run has started (1 on the first attempt).
    public let runCount: Int
    /// The agent's database URL (empty: libpq's `PG*` environment).
    public let databaseURL: String
    /// The SDK engine over the agent's own pool, for SDK flows recording task runs.
    public let engine: PGFlowEngine
    let logs: LogBatcher

    /// Writes a log line for this run (batched; 10 debug, 20 info, 30 warning, 40 error).
    public func log(_ message: String, level: Int = 20, name: String = "flow") {
        logs.append(LogLine(flowRunID: flowRunID, level: level, name: name, message: message))
    }

    /// Decodes the parameters into a `Decodable` type.
    public func parameters<P: Decodable>(as type: P.Type = P.self) throws -> P {
        try JSONDecoder().decode(P.self, from: Data(parametersJSON.utf8))
    }
}

extension Flow {
    /// This flow as an in-process agent flow named after it (`swift:<name>` in deployments). It
    /// attaches to the run the agent claimed: task runs, logs and the result are recorded by the SDK,
    /// the flow run's states (Running, the final state, timeouts, cancellation) by the agent.
    public var agentFlow: AgentFlow { agentFlow(named: name) }

    /// This flow as an in-process agent flow under another entrypoint name.
    public func agentFlow(named entrypointName: String) -> AgentFlow {
        AgentFlow(name: entrypointName) { context in
            try await runAttached(
                flowRunID: context.flowRunID, flowRunName: context.flowRunName, parametersJSON: context.parametersJSON,
                runCount: context.runCount, engine: context.engine)
        }
    }
}
