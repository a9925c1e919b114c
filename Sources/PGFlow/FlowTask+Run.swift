import Foundation
import Logging
import PGFlowClient

/// A run that took longer than its timeout.
public struct RunTimeout: Error {
    /// Creates the error.
    public init() {}
}

/// Runs `body`, cancelling it after `timeout` (nil: no limit) and throwing `RunTimeout` then (once
/// `body` has honoured the cancellation: a body that must stop something stops it in a cancellation
/// handler). The one timeout helper of the SDK and the agent.
public func withTimeout<T: Sendable>(_ timeout: Duration?, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let timeout else { return try await body() }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let value = first else { throw RunTimeout() }
        return value
    }
}

/// Sleeps until a run's scheduled retry: the delay is measured on the database's clock.
func sleepUntilRetry(_ outcome: TransitionOutcome) async throws {
    guard let next = outcome.nextScheduledStart else { return }
    let seconds = next.timeIntervalSince(outcome.stateTimestamp)
    if seconds > 0 { try await Task.sleep(for: .milliseconds(Int((seconds * 1000).rounded(.up)))) }
}

extension FlowTask {
    typealias Transition = TaskRunRecorder.Transition

    func execute(_ input: Input) async throws -> Output {
        guard let scope = FlowRunScope.current else {
            Logger(label: "pgflow.task").debug("task \(name) called outside a flow: it runs as a plain function and nothing is recorded")
            return try await body(input)
        }
        let inputsJSON = try JSONText.encode(input)
        try scope.engine.check(inputsJSON, what: "the inputs of task \(name)")
        let dynamicKey = scope.nextDynamicKey(name)
        var cacheKey: String?
        if let cache {
            cacheKey = cache.key(CacheKeyContext(taskName: name, taskVersion: version, inputsJSON: inputsJSON,
                                                 flowParametersJSON: scope.parametersJSON, flowRunID: scope.flowRunID))
        }
        let record = TaskRunRecord(spec: TaskRunSpec(
            flowRunID: scope.flowRunID, taskKey: name, dynamicKey: dynamicKey,
            name: runName.map { JSONText.render(template: $0, parametersJSON: inputsJSON) } ?? "\(name)-\(dynamicKey)",
            inputsJSON: inputsJSON, tags: tags, cacheKey: cacheKey, cacheExpiration: cache?.expiration?.seconds,
            cacheRefresh: cache?.refresh ?? false, retry: retries.sql, createdAt: Date()))
        return try await run(record, input: input, scope: scope)
    }

    /// Creates and starts a task run, then runs it to its end with retries.
    ///
    /// The fast path: a task without tags and without a cache lookup (no cache key, or one it refreshes)
    /// in a flow run's first attempt cannot be refused by PostgreSQL's start rules, so its start and
    /// completion are recorded without waiting (the recorder batches them). Every other start waits for PostgreSQL's decision: Cached (the stored
    /// result is returned), a full tag limit (wait), or a task run left by an earlier attempt of a
    /// retried flow run (completed: its result is reused; failed: a new task run runs).
    func run(_ first: TaskRunRecord, input: Input, scope: FlowRunScope) async throws -> Output {
        var record = first
        let recorder = scope.recorder
        await recorder.backpressure()
        recorder.create(record)
        if (first.spec.cacheKey == nil || first.spec.cacheRefresh) && tags.isEmpty && scope.runCount <= 1 {
            recorder.propose(Transition(record: record, type: .running, name: nil, message: nil, resultJSON: nil))
        } else {
            var rerun = 0
            start: while true {
                let outcome = try await start(record, recorder: recorder)
                switch (outcome.status, outcome.stateType) {
                case (.accepted, _):
                    break start
                case (.redirected, .completed):
                    let output = try JSONText.decode(Output.self, from: try scope.engine.loadResult(outcome.resultJSON ?? "null"))
                    await completed(record, scope: scope, state: outcome.stateName, output: output)
                    return output
                case (.rejected, .completed):
                    let id = record.id!
                    let stored = try await scope.engine.pool.withConnection { try PGFlowClient.result(of: id, on: $0) }
                    let output = try JSONText.decode(Output.self, from: try scope.engine.loadResult(stored ?? "null"))
                    await completed(record, scope: scope, state: outcome.stateName, output: output)
                    return output
                case (.rejected, let type) where type.isTerminal && rerun == 0:
                    // an earlier attempt of the flow run left this task run failed: run it as a new one
                    rerun += 1
                    var spec = record.spec
                    spec.dynamicKey += "-attempt\(scope.runCount)"
                    spec.name += "-attempt\(scope.runCount)"
                    record = TaskRunRecord(spec: spec)
                    recorder.create(record)
                default:
                    throw FlowRunError.rejected(outcome.reason ?? "task run \(record.spec.name) could not start (\(outcome.stateName))")
                }
            }
        }
        var attempt = 0
        while true {
            attempt += 1
            let started = Date()
            let current = record
            do {
                let output = try await withTimeout(timeout) { [body] in
                    try await FlowRunScope.$taskRun.withValue(current) { try await body(input) }
                }
                let json = try await scope.engine.storeIfLarge(try JSONText.encode(output), what: "the result of task \(name)")
                recorder.propose(Transition(record: record, type: .completed, name: nil, message: nil, resultJSON: json))
                await completed(record, scope: scope, state: "Completed", output: output)
                return output
            } catch {
                if error is CancellationError || Task.isCancelled {
                    recorder.propose(Transition(record: record, type: .cancelled, name: nil, message: "the task was cancelled", resultJSON: nil))
                    throw error
                }
                let timedOut = error is RunTimeout
                let allowRetry = retries.allows(error) && !(error is FlowRunError)
                var message = timedOut
                    ? "exceeded its timeout of \(timeout!.seconds) s; the task was cancelled"
                    : "\(error)"
                if !allowRetry && attempt <= retries.count {
                    message += " (not retried: the retry condition refused this error)"
                }
                let outcome = try await recorder.decide(Transition(
                    record: record, type: .failed, name: timedOut ? "TimedOut" : nil, message: message, resultJSON: nil,
                    allowRetry: allowRetry))
                if outcome.stateName == "AwaitingRetry" {
                    runLogger(label: "pgflow.task").info("task run \(record.spec.name) failed after \(Date().timeIntervalSince(started)) s, retrying: \(message)")
                    try await sleepUntilRetry(outcome)
                    let restarted = try await start(record, recorder: recorder)
                    guard restarted.status == .accepted else {
                        throw FlowRunError.rejected(restarted.reason ?? "task run \(record.spec.name) could not be retried")
                    }
                    continue
                }
                let info = TaskRunInfo(taskName: name, taskRunID: record.id, flowRunID: scope.flowRunID, stateName: outcome.stateName)
                for hook in onFailure { await hook(info, error) }
                if timedOut { throw FlowRunError.taskTimedOut(task: name, taskRunID: record.id!, seconds: timeout!.seconds) }
                if error is FlowRunError { throw error }
                throw FlowRunError.taskFailed(task: name, taskRunID: record.id!, message: message)
            }
        }
    }

    /// Proposes Running and waits for the decision, waiting out full tag limits.
    private func start(_ record: TaskRunRecord, recorder: TaskRunRecorder) async throws -> TransitionOutcome {
        var pause = 20
        while true {
            let outcome = try await recorder.decide(Transition(record: record, type: .running, name: nil, message: nil, resultJSON: nil))
            if outcome.status != .wait { return outcome }
            try await Task.sleep(for: .milliseconds(pause))
            pause = min(pause * 2, 1_000)
        }
    }

    private func completed(_ record: TaskRunRecord, scope: FlowRunScope, state: String, output: Output) async {
        if onCompletion.isEmpty { return }
        let info = TaskRunInfo(taskName: name, taskRunID: record.id, flowRunID: scope.flowRunID, stateName: state)
        for hook in onCompletion { await hook(info, output) }
    }
}
