import Foundation
import Logging
import PGFlowClient
import Synchronization

/// How one execution ended, before it becomes a state.
enum ExecutionOutcome: Sendable {
    case completed(resultJSON: String?)
    case failed(String)
    case timedOut(String)
    case cancelled(String)
    /// The agent is shutting down and stopped it: no state is proposed (deregistering crashes it).
    case abandoned

    var proposal: (StateType, String?, String?)? {
        switch self {
        case .completed: return (.completed, nil, nil)
        case .failed(let m): return (.failed, nil, m)
        case .timedOut(let m): return (.failed, "TimedOut", m)
        case .cancelled(let m): return (.cancelled, nil, m)
        case .abandoned: return nil
        }
    }
}

/// Why a running execution is being stopped.
enum StopReason: Sendable { case cancelled, shutdown }

/// A run in progress: lets the agent stop it (cancel or shutdown) from outside.
final class RunHandle: Sendable {
    let run: ClaimedFlowRun
    private let state = Mutex<(child: ChildProcess?, stop: StopReason?, task: Task<ExecutionOutcome, Never>?)>((nil, nil, nil))

    init(run: ClaimedFlowRun) { self.run = run }

    var stopReason: StopReason? { state.withLock { $0.stop } }

    func attach(_ child: ChildProcess) -> StopReason? {
        state.withLock { s in
            s.child = child
            return s.stop
        }
    }

    func attach(_ task: Task<ExecutionOutcome, Never>) {
        let stop = state.withLock { s -> StopReason? in
            s.task = task
            return s.stop
        }
        if stop != nil { task.cancel() }
    }

    /// Stops the run: SIGTERM then SIGKILL for a command, task cancellation for a Swift flow.
    func stop(_ reason: StopReason, grace: Duration) async {
        let (child, task, first) = state.withLock { s -> (ChildProcess?, Task<ExecutionOutcome, Never>?, Bool) in
            let first = s.stop == nil
            if first { s.stop = reason }
            return (s.child, s.task, first)
        }
        guard first else { return }
        task?.cancel()
        if let child { _ = await child.terminate(grace: grace) }
    }
}

/// Runs one claimed run to its final state.
struct RunExecution {
    let handle: RunHandle
    let agentName: String
    let configuration: AgentConfiguration
    let flows: [String: AgentFlow]
    let states: StateBatcher
    let logs: LogBatcher
    let logger: Logger

    var run: ClaimedFlowRun { handle.run }

    func execute() async {
        do {
            // The claim starts runs (Pending, then Running, in one statement); a run it left Pending
            // (it could not start it) is started here.
            var runCount = run.runCount
            if run.stateType != .running {
                let started = try await states.propose(StateProposal(runID: run.id, type: .running))
                if started.stateType == .cancelling {  // cancelled between claim and start
                    _ = try await states.propose(StateProposal(runID: run.id, type: .cancelled, message: "cancelled before it started"))
                    return
                }
                guard started.status == .accepted || started.status == .duplicate && started.stateType == .running else {
                    logger.debug("run not started", metadata: ["run": "\(run.id)", "status": "\(started.status)", "reason": "\(started.reason ?? "")"])
                    return
                }
                runCount = started.runCount
            }
            let outcome = await outcome(runCount: runCount)
            await logs.flushed()
            guard let (type, name, message) = outcome.proposal else { return }
            let resultJSON: String? = if case .completed(let json) = outcome { json } else { nil }
            let ended = try await states.propose(StateProposal(runID: run.id, type: type, name: name, message: message, resultJSON: resultJSON))
            if ended.status == .rejected {
                logger.debug("final state not written", metadata: ["run": "\(run.id)", "reason": "\(ended.reason ?? "")"])
            }
        } catch {
            logger.error("run \(run.id): \(error)")
        }
    }

    private func outcome(runCount: Int) async -> ExecutionOutcome {
        let entrypoint = run.entrypoint ?? ""
        if entrypoint.hasPrefix("swift:") {
            return await runFlow(named: String(entrypoint.dropFirst(6)), runCount: runCount)
        }
        if entrypoint.isEmpty {
            return .failed("run \(run.name) has no entrypoint: ad-hoc runs without a deployment are run by the SDK, not by an agent")
        }
        return await runCommand(entrypoint.hasPrefix("command:") ? String(entrypoint.dropFirst(8)) : entrypoint, runCount: runCount)
    }

    private func log(_ message: String, level: Int = 20) {
        logs.append(LogLine(flowRunID: run.id, level: level, name: "pgflow.agent", message: message))
    }

    // MARK: Commands

    private func runCommand(_ line: String, runCount: Int) async -> ExecutionOutcome {
        let words: [String]
        do { words = try CommandWords.split(line) } catch { return .failed("bad entrypoint: \(error)") }
        var environment = ProcessInfo.processInfo.environment
        environment["PGFLOW_FLOW_RUN_ID"] = run.id.uuidString.lowercased()
        environment["PGFLOW_FLOW_RUN_NAME"] = run.name
        environment["PGFLOW_RUN_COUNT"] = String(runCount)
        environment["PGFLOW_PARAMETERS"] = run.parametersJSON
        if !configuration.databaseURL.isEmpty { environment["PGFLOW_DATABASE_URL"] = configuration.databaseURL }
        let runID = run.id, logs = self.logs
        let child: ChildProcess
        do {
            child = try await ChildProcess.start(arguments: words, environment: environment, input: Data((run.parametersJSON + "\n").utf8)) { line in
                logs.append(LogLine(flowRunID: runID, level: line.isError ? 40 : 20, name: line.isError ? "stderr" : "stdout", message: line.text))
            }
        } catch {
            return .failed("\(error)")
        }
        log("started \(words[0]) as pid \(child.pid) on agent \(agentName)")
        if let reason = handle.attach(child) {  // stopped while starting
            _ = await child.terminate(grace: configuration.killGracePeriod)
            return reason == .shutdown ? .abandoned : .cancelled("cancelled before it started")
        }
        let termination: ChildProcess.Termination
        var timedOut = false
        if let limit = run.timeoutSeconds {
            termination = await withTaskGroup(of: ChildProcess.Termination?.self) { group in
                group.addTask { await child.wait() }
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(Int(limit * 1000)))
                    return nil
                }
                let first = await group.next()!
                if let first {
                    group.cancelAll()
                    return first
                }
                timedOut = true
                return await child.terminate(grace: configuration.killGracePeriod)
            }
        } else {
            termination = await child.wait()
        }
        switch (handle.stopReason, timedOut, termination) {
        case (.shutdown, _, _): return .abandoned
        case (.cancelled, _, _): return .cancelled("cancelled; the process was stopped (\(termination))")
        case (nil, true, _): return .timedOut("exceeded its timeout of \(run.timeoutSeconds!) s; the process was stopped")
        case (nil, false, .exited(0)): return .completed(resultJSON: nil)
        case (nil, false, .exited(let code)): return .failed("the command exited with code \(code)")
        case (nil, false, .signaled(let sig)): return .failed("the command was killed by signal \(sig)")
        }
    }

    // MARK: Swift flows

    private func runFlow(named name: String, runCount: Int) async -> ExecutionOutcome {
        guard let flow = flows[name] else {
            let known = flows.keys.sorted().joined(separator: ", ")
            return .failed("no flow named \(name.debugDescription) is registered in agent \(agentName) (registered: \(known.isEmpty ? "none" : known)); run it on an agent built with that flow")
        }
        let context = FlowRunContext(
            flowRunID: run.id, flowRunName: run.name, parametersJSON: run.parametersJSON, runCount: run.runCount,
            databaseURL: configuration.databaseURL, logs: logs)
        let limit = run.timeoutSeconds
        let handle = self.handle
        let task = Task<ExecutionOutcome, Never> {
            do {
                let result = try await withThrowingTaskGroup(of: String?.self) { group in
                    group.addTask { try await flow.body(context) }
                    if let limit {
                        group.addTask {
                            try await Task.sleep(for: .milliseconds(Int(limit * 1000)))
                            throw FlowTimeout()
                        }
                    }
                    let first = try await group.next()!
                    group.cancelAll()
                    return first
                }
                return .completed(resultJSON: result)
            } catch is FlowTimeout {
                return .timedOut("exceeded its timeout of \(limit ?? 0) s; the flow was cancelled")
            } catch {
                switch handle.stopReason {
                case .shutdown: return .abandoned
                case .cancelled: return .cancelled("cancelled; the flow was cancelled")
                case nil: return .failed("\(error)")
                }
            }
        }
        handle.attach(task)
        let outcome = await task.value
        if case .completed = outcome, let reason = handle.stopReason {
            return reason == .shutdown ? .abandoned : .cancelled("cancelled; the flow finished anyway")
        }
        return outcome
    }
}

private struct FlowTimeout: Error {}
