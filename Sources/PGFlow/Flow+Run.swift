import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres

/// How one attempt of a flow body ended.
enum AttemptOutcome<Output: Sendable>: Sendable {
    case completed(Output, json: String)
    case failed(any Error, message: String)
    case timedOut(Double)
    case cancelled
}

extension Flow {
    // MARK: Local mode

    /// Creates the flow run (RUNNING) and runs attempts until it completes, fails for good, is
    /// cancelled or is found crashed. The flow's final state is written by the SDK here.
    func runLocal(_ input: Input, engine: PGFlowEngine, parentTaskRunID: UUID?) async throws -> FlowRunResult<Output> {
        let parametersJSON = try JSONText.parameters(input)
        try engine.check(parametersJSON, what: "the parameters of flow \(name)")
        let displayName = runName.map { JSONText.render(template: $0, parametersJSON: parametersJSON) }
        let (name, tags, retry) = (self.name, self.tags, retries.sql)
        let flowRunID = try await engine.pool.withConnection { c in
            try PGFlowClient.createFlowRun(flowName: name, parametersJSON: parametersJSON, name: displayName, tags: tags,
                                           parentTaskRunID: parentTaskRunID, retry: retry, on: c)
        }
        var type = try await engine.pool.withConnection { try PGFlowClient.flowRunSummary(flowRunID, on: $0) }?.stateType ?? .running
        var pause = 20
        while type == .scheduled {  // a full tag limit: AwaitingConcurrencySlot until a slot frees
            try await Task.sleep(for: .milliseconds(pause))
            pause = min(pause * 2, 1_000)
            let outcome = try await setState(engine, flowRunID, .running)
            type = outcome.stateType
        }
        let runNameNow = try await engine.pool.withConnection { try PGFlowClient.flowRunSummary(flowRunID, on: $0) }?.name ?? name
        var attempt = 1
        while true {
            let scope = FlowRunScope(engine: engine, flowRunID: flowRunID, flowName: name, flowRunName: runNameNow,
                                     parametersJSON: parametersJSON, runCount: attempt, logPrints: logPrints)
            if attempt == 1, let version {
                scope.log(level: 20, name: "pgflow.flow", message: "flow \(name) version \(version) starting")
            }
            await call(onRunning, info(scope, "Running", nil))
            let outcome = await execute(input, scope: scope, timeout: timeout)
            var proposal: StateProposal
            switch outcome {
            case .completed(_, let json):
                proposal = StateProposal(runID: flowRunID, type: .completed, resultJSON: json)
            case .failed(_, let message):
                proposal = StateProposal(runID: flowRunID, type: .failed, message: message)
            case .timedOut(let seconds):
                proposal = StateProposal(runID: flowRunID, type: .failed, name: "TimedOut",
                                         message: "exceeded its timeout of \(seconds) s; the flow was cancelled")
            case .cancelled:
                proposal = StateProposal(runID: flowRunID, type: .cancelled, message: "the flow was cancelled")
            }
            var allowRetry = true
            if case .failed(let error, _) = outcome, !retries.allows(error) {
                allowRetry = false
                if attempt <= retries.count {
                    proposal.message = (proposal.message ?? "") + " (not retried: the retry condition refused this error)"
                }
            }
            let ended = try await setState(engine, flowRunID, proposal, allowRetry: allowRetry)
            if ended.stateName == "AwaitingRetry" {
                try await sleepUntilRetry(ended)
                let restarted = try await setState(engine, flowRunID, StateProposal(runID: flowRunID, type: .running))
                guard restarted.status == .accepted else {
                    throw FlowRunError.rejected(restarted.reason ?? "flow run \(flowRunID) could not be retried")
                }
                attempt = restarted.runCount
                continue
            }
            return await finish(outcome, ended: ended, scope: scope)
        }
    }

    /// Calls the hooks of the state the run ended in and builds the result.
    private func finish(_ outcome: AttemptOutcome<Output>, ended: TransitionOutcome, scope: FlowRunScope) async -> FlowRunResult<Output> {
        let message: String?
        let error: (any Error)?
        var value: Output?
        switch outcome {
        case .completed(let output, _): (message, error, value) = (nil, nil, output)
        case .failed(let e, let m): (message, error) = (m, e)
        case .timedOut(let s): (message, error) = ("exceeded its timeout of \(s) s", FlowRunError.flowFailed(
            flow: name, flowRunID: scope.flowRunID, state: "TimedOut", message: "exceeded its timeout of \(s) s"))
        case .cancelled: (message, error) = ("cancelled", CancellationError())
        }
        let state = ended.stateName
        let hookInfo = info(scope, state, message ?? ended.reason)
        switch ended.stateType {
        case .completed: await call(onCompletion, hookInfo)
        case .cancelled: await call(onCancellation, hookInfo)
        case .crashed: await call(onCrashed, hookInfo)
        default: await call(onFailure, hookInfo)
        }
        if ended.stateType != .completed { value = nil }
        let finalError = ended.stateType == .completed ? nil : (error ?? FlowRunError.flowFailed(
            flow: name, flowRunID: scope.flowRunID, state: state, message: ended.reason ?? "the run ended \(state)"))
        return FlowRunResult(flowRunID: scope.flowRunID, stateName: state, runCount: scope.runCount, value: value, error: finalError)
    }

    // MARK: Subflows

    /// A flow called inside a flow: a task run of the parent (`subflow:<name>`) whose child flow run
    /// points at it (`parent_task_run_id`).
    func runAsSubflow(_ input: Input, parent: FlowRunScope) async throws -> Output {
        let key = "subflow:" + name
        let dynamicKey = parent.nextDynamicKey(key)
        let inputsJSON = try JSONText.encode(input)
        let record = TaskRunRecord(spec: TaskRunSpec(
            flowRunID: parent.flowRunID, taskKey: key, dynamicKey: dynamicKey, name: "\(name)-\(dynamicKey)",
            inputsJSON: inputsJSON, tags: [], cacheKey: nil, cacheExpiration: nil, retry: .none, createdAt: Date()))
        parent.recorder.create(record)
        let started = try await parent.recorder.decide(.init(record: record, type: .running, name: nil, message: nil, resultJSON: nil))
        if started.status == .rejected, started.stateType == .completed, let id = record.id {  // done in an earlier attempt
            let stored = try await parent.engine.pool.withConnection { try PGFlowClient.result(of: id, on: $0) }
            return try JSONText.decode(Output.self, from: try parent.engine.loadResult(stored ?? "null"))
        }
        guard started.status == .accepted, let taskRunID = record.id else {
            throw FlowRunError.rejected(started.reason ?? "subflow \(name) could not start")
        }
        let result = try await FlowRunScope.$current.withValue(nil) {
            try await runLocal(input, engine: parent.engine, parentTaskRunID: taskRunID)
        }
        if let value = result.value, result.stateName == "Completed" {
            let json = try JSONText.encode(value)
            parent.recorder.propose(.init(record: record, type: .completed, name: nil, message: nil, resultJSON: json))
            return value
        }
        let message = "subflow run \(result.flowRunID.uuidString.lowercased()) ended \(result.stateName)"
        _ = try await parent.recorder.decide(.init(record: record, type: result.stateName == "Cancelled" ? .cancelled : .failed,
                                                   name: nil, message: message, resultJSON: nil))
        throw result.error ?? FlowRunError.flowFailed(flow: name, flowRunID: result.flowRunID, state: result.stateName, message: message)
    }

    // MARK: Agent mode

    /// Runs the flow attached to a flow run an agent claimed and started: records task runs and logs,
    /// returns the result as JSON text. The agent writes the flow run's states (it applies the
    /// deployment's timeout and cancellation by cancelling this call) and so retries come from the
    /// deployment's policy; the hooks run on this process's outcome.
    public func runAttached(flowRunID: UUID, flowRunName: String, parametersJSON: String, runCount: Int,
                            engine: PGFlowEngine) async throws -> String? {
        let input = try JSONText.decodeParameters(Input.self, from: parametersJSON)
        let scope = FlowRunScope(engine: engine, flowRunID: flowRunID, flowName: name, flowRunName: flowRunName,
                                 parametersJSON: parametersJSON, runCount: runCount, logPrints: logPrints)
        await call(onRunning, info(scope, "Running", nil))
        switch await execute(input, scope: scope, timeout: nil) {
        case .completed(_, let json):
            await call(onCompletion, info(scope, "Completed", nil))
            return json
        case .failed(let error, let message):
            await call(onFailure, info(scope, "Failed", message))
            throw error
        case .timedOut(let seconds):
            throw FlowRunError.flowFailed(flow: name, flowRunID: flowRunID, state: "TimedOut", message: "exceeded \(seconds) s")
        case .cancelled:
            await call(onCancellation, info(scope, "Cancelled", nil))
            throw CancellationError()
        }
    }

    // MARK: One attempt

    /// Runs the body in `scope` with the recorder's writer beside it; waits for submitted tasks and
    /// for every record to be written before reporting the outcome.
    func execute(_ input: Input, scope: FlowRunScope, timeout: Duration?) async -> AttemptOutcome<Output> {
        let body = self.body
        return await withTaskGroup(of: Void.self) { group in
            group.addTask { await scope.recorder.run() }
            var outcome: AttemptOutcome<Output>
            do {
                let output = try await FlowRunScope.$current.withValue(scope) {
                    try await FlowRunScope.$taskRun.withValue(nil) {
                        try await withTimeout(timeout) {
                            let output = try await body(input)
                            await scope.waitForSubmitted()
                            return output
                        }
                    }
                }
                let json = try await scope.engine.storeIfLarge(try JSONText.encode(output), what: "the result of flow \(name)")
                outcome = .completed(output, json: json)
            } catch is RunTimeout {
                outcome = .timedOut(timeout?.seconds ?? 0)
            } catch {
                outcome = (error is CancellationError || Task.isCancelled) ? .cancelled : .failed(error, message: "\(error)")
            }
            scope.cancelSubmitted()
            await scope.waitForSubmitted()
            scope.recorder.finish()
            await group.waitForAll()
            do { try await scope.recorder.flushed() } catch {
                if case .completed = outcome { outcome = .failed(error, message: "could not record the flow's task runs: \(error)") }
            }
            return outcome
        }
    }

    // MARK: Helpers

    func setState(_ engine: PGFlowEngine, _ id: UUID, _ type: StateType) async throws -> TransitionOutcome {
        try await setState(engine, id, StateProposal(runID: id, type: type))
    }

    func setState(_ engine: PGFlowEngine, _ id: UUID, _ proposal: StateProposal,
                          allowRetry: Bool = true) async throws -> TransitionOutcome {
        var p = proposal
        p.transitionID = p.transitionID ?? UUID()
        return try await engine.pool.withConnection { [p] c in try PGFlowClient.setFlowRunState(p, allowRetry: allowRetry, on: c) }
    }

    func info(_ scope: FlowRunScope, _ state: String, _ message: String?) -> FlowRunInfo {
        FlowRunInfo(flowName: name, flowRunID: scope.flowRunID, runCount: scope.runCount, stateName: state, message: message)
    }

    func call(_ hooks: [Hook], _ info: FlowRunInfo) async {
        for hook in hooks { await hook(info) }
    }
}
