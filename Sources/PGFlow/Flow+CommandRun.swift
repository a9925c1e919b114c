import Foundation
import PGFlowClient
import Synchronization

/// The flow run an agent started this process for: a deployment whose entrypoint is a command that
/// uses the SDK. The agent passes it in `PGFLOW_FLOW_RUN_ID` (and name, run count, parameters); the
/// first top-level flow call of the process attaches to it instead of creating a run of its own.
enum CommandRun {
    struct Claimed: Sendable {
        let id: UUID
        let name: String
        let runCount: Int
        let parametersJSON: String
    }

    private static let taken = Mutex(false)

    /// The run to attach to, once per process (later top-level calls create runs as usual).
    static func take(environment: [String: String] = ProcessInfo.processInfo.environment) -> Claimed? {
        guard let text = environment["PGFLOW_FLOW_RUN_ID"], let id = UUID(uuidString: text) else { return nil }
        let first = taken.withLock { taken in
            defer { taken = true }
            return !taken
        }
        guard first else { return nil }
        return Claimed(id: id, name: environment["PGFLOW_FLOW_RUN_NAME"] ?? "", runCount: Int(environment["PGFLOW_RUN_COUNT"] ?? "") ?? 1,
                       parametersJSON: environment["PGFLOW_PARAMETERS"] ?? "{}")
    }
}

extension Flow {
    /// Runs the flow inside the run an agent started this process for. Task runs, logs and, on success,
    /// the Completed state with the result are recorded by the SDK (the agent's own proposal from the exit
    /// code is then refused harmlessly). A failure is left to the agent: the program's non-zero exit code
    /// becomes Failed there, with the deployment's retries.
    func runInCommandRun(_ input: Input, _ claimed: CommandRun.Claimed, engine: PGFlowEngine) async -> FlowRunResult<Output> {
        let scope = FlowRunScope(engine: engine, flowRunID: claimed.id, flowName: name, flowRunName: claimed.name,
                                 parametersJSON: claimed.parametersJSON, runCount: claimed.runCount, logPrints: logPrints)
        await call(onRunning, info(scope, "Running", nil))
        switch await execute(input, scope: scope, timeout: timeout) {
        case .completed(let output, let json):
            do {
                let ended = try await setState(engine, claimed.id, StateProposal(runID: claimed.id, type: .completed, resultJSON: json))
                guard ended.stateName == "Completed" else {
                    return FlowRunResult(flowRunID: claimed.id, stateName: ended.stateName, runCount: claimed.runCount, value: nil,
                                         error: FlowRunError.rejected("flow run \(claimed.id) could not complete: \(ended.reason ?? ended.stateName)"))
                }
            } catch {
                return FlowRunResult(flowRunID: claimed.id, stateName: "Failed", runCount: claimed.runCount, value: nil, error: error)
            }
            await call(onCompletion, info(scope, "Completed", nil))
            return FlowRunResult(flowRunID: claimed.id, stateName: "Completed", runCount: claimed.runCount, value: output, error: nil)
        case .failed(let error, let message):
            await call(onFailure, info(scope, "Failed", message))
            return FlowRunResult(flowRunID: claimed.id, stateName: "Failed", runCount: claimed.runCount, value: nil, error: error)
        case .timedOut(let seconds):
            let error = FlowRunError.flowFailed(flow: name, flowRunID: claimed.id, state: "TimedOut", message: "exceeded \(seconds) s")
            return FlowRunResult(flowRunID: claimed.id, stateName: "TimedOut", runCount: claimed.runCount, value: nil, error: error)
        case .cancelled:
            await call(onCancellation, info(scope, "Cancelled", nil))
            return FlowRunResult(flowRunID: claimed.id, stateName: "Cancelled", runCount: claimed.runCount, value: nil, error: CancellationError())
        }
    }
}
