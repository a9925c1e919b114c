import Foundation
import Logging
import PGFlow
import PGFlowClient
import PGFlowSecrets

/// Why a run's secret environment could not be given to its command (said in the run's failure).
struct SecretEnvironmentError: Error, CustomStringConvertible {
    let message: String
    /// The database could not be reached: the run is left unstarted for reconciliation, not failed.
    var transient = false
    var description: String { message }
}

/// How one execution ended, before it becomes a state.
enum ExecutionOutcome: Sendable {
    case completed(resultJSON: String?)
    case failed(String)
    case timedOut(String)
    case cancelled(String)
    /// The agent is shutting down and stopped it: no state is proposed (deregistering crashes it).
    case abandoned
    /// Nothing was started (the database could not be reached to prepare it): no state is proposed,
    /// and the agent's reconciliation gives the run back to its queue.
    case notStarted

    var proposal: (StateType, String?, String?)? {
        switch self {
        case .completed: return (.completed, nil, nil)
        case .failed(let m): return (.failed, nil, m)
        case .timedOut(let m): return (.failed, "TimedOut", m)
        case .cancelled(let m): return (.cancelled, nil, m)
        case .abandoned, .notStarted: return nil
        }
    }
}

/// Runs one claimed run to its final state.
struct RunExecution {
    let handle: RunHandle
    let agentName: String
    let configuration: AgentConfiguration
    let flows: [String: AgentFlow]
    let engine: PGFlowEngine
    let states: StateBatcher
    let logs: LogBatcher
    let logger: Logger
    /// The agent's liveness: a run starts only before its `startDeadline`.
    let heartbeat: AgentHeartbeat
    /// The variables of the deployment's secret environment (commands only), or why they are unusable.
    var secrets: Result<[String: String], SecretEnvironmentError> = .success([:])

    var run: ClaimedFlowRun { handle.run }

    /// Runs it; returns true when the agent may forget the run: the database has its last state, or no
    /// process was started for it (reconciliation may then give it back to the queue).
    func execute() async -> Bool {
        do {
            // The claim starts runs (Pending, then Running, in one statement); a run it left Pending
            // (it could not start it) is started here.
            var runCount = run.runCount
            if run.stateType != .running {
                let started = try await states.propose(StateProposal(runID: run.id, type: .running))
                if started.stateType == .cancelling {  // cancelled between claim and start
                    _ = try await states.propose(StateProposal(runID: run.id, type: .cancelled, message: "cancelled before it started"))
                    return true
                }
                guard started.status == .accepted || started.status == .duplicate && started.stateType == .running else {
                    logger.debug("run not started", metadata: ["run": "\(run.id)", "status": "\(started.status)", "reason": "\(started.reason ?? "")"])
                    return true
                }
                runCount = started.runCount
            }
            let outcome = await outcome(runCount: runCount)
            handle.settle()
            // Nothing ran: no state follows its log lines, so they need not be written first (waiting for
            // them kept the run's slot taken while the database was out of reach, which is when a run is
            // not started past its deadline).
            if case .notStarted = outcome { return true }
            await logs.flushed()
            guard let (type, name, message) = outcome.proposal else { return false }
            let resultJSON: String? = if case .completed(let json) = outcome { json } else { nil }
            let ended = try await states.propose(StateProposal(runID: run.id, type: type, name: name, message: message, resultJSON: resultJSON))
            if ended.status == .rejected {
                logger.debug("final state not written", metadata: ["run": "\(run.id)", "reason": "\(ended.reason ?? "")"])
            }
            return true
        } catch {
            logger.error("run \(run.id): \(error)")
            return false
        }
    }

    private func outcome(runCount: Int) async -> ExecutionOutcome {
        // Frozen or cut off since the claim (or the push) for the fence timeout: the reaper may have handed
        // the run to another agent; it is not started here (reconciliation gives it back if it is still ours).
        guard heartbeat.mayStart else { return notStartedPastDeadline() }
        let entrypoint = run.entrypoint ?? ""
        if entrypoint.hasPrefix("swift:") {
            return await runFlow(named: String(entrypoint.dropFirst(6)), runCount: runCount)
        }
        if entrypoint.isEmpty {
            return .failed("run \(run.name) has no entrypoint: ad-hoc runs without a deployment are run by the SDK, not by an agent")
        }
        return await runCommand(entrypoint.hasPrefix("command:") ? String(entrypoint.dropFirst(8)) : entrypoint, runCount: runCount)
    }

    private func notStartedPastDeadline() -> ExecutionOutcome {
        let why = NotStartedPastDeadline().description
        logger.warning("run \(run.id): \(why)")
        log(why + " (agent \(agentName))", level: 30)
        return .notStarted
    }

    private func log(_ message: String, level: Int = 20) {
        logs.append(LogLine(flowRunID: run.id, level: level, name: "pgflow.agent", message: message))
    }

    // MARK: Commands

    private func runCommand(_ line: String, runCount: Int) async -> ExecutionOutcome {
        let words: [String]
        do { words = try CommandWords.split(line) } catch { return .failed("bad entrypoint: \(error)") }
        let parameters: CommandParameters
        do { parameters = try CommandParameters(json: run.parametersJSON) } catch { return .failed("\(error)") }
        defer { parameters.remove() }
        let secretEnvironment: [String: String]
        switch secrets {
        case .success(let variables): secretEnvironment = variables
        case .failure(let error) where error.transient:
            log(error.message + "; the run was not started", level: 30)
            return .notStarted
        case .failure(let error): return .failed(error.message)
        }
        let environment = CommandEnvironment.build(
            for: run, runCount: runCount, parameters: parameters, configuration: configuration
        ).merging(secretEnvironment) { _, secret in secret }
        // A command given secrets has them replaced by *** in its logged output.
        let redactor = SecretRedactor(environment: secretEnvironment)
        let runID = run.id, logs = self.logs
        let child: ChildProcess
        do {
            child = try await ChildProcess.start(
                arguments: words, environment: environment, input: Data((run.parametersJSON + "\n").utf8),
                fence: configuration.fenceTimeout, killGrace: configuration.killGracePeriod,
                deadline: heartbeat.startDeadline
            ) { line in
                let text = redactor.isEmpty ? line.text : redactor.redact(line.text)
                logs.append(LogLine(flowRunID: runID, level: line.isError ? 40 : 20, name: line.isError ? "stderr" : "stdout", message: text))
            }
        } catch is NotStartedPastDeadline {
            return notStartedPastDeadline()
        } catch {
            return .failed("\(error)")
        }
        log("started \(words[0]) as pid \(child.pid) on agent \(agentName)")
        if let reason = handle.attach(child) {  // stopped while starting
            _ = await child.terminate(grace: configuration.killGracePeriod)
            return reason == .cancelled ? .cancelled("cancelled before it started") : .abandoned
        }
        let limit = safeDuration(seconds: run.timeoutSeconds)
        let grace = configuration.killGracePeriod
        var timedOut = false
        do {
            _ = try await withTimeout(limit) {
                await withTaskCancellationHandler { await child.wait() } onCancel: { Task { _ = await child.terminate(grace: grace) } }
            }
        } catch is RunTimeout {
            timedOut = true
        } catch {}
        let ending = await child.ending()
        let termination = ending.termination
        if ending.fence != 0 {
            log("the agent lost its claim (\(ending.fence == 2 ? "no heartbeat for the fence timeout" : "the agent died")); the run's processes were stopped", level: 30)
            return .abandoned
        }
        switch (handle.stopReason, timedOut, termination) {
        case (.shutdown, _, _), (.fenced, _, _): return .abandoned
        case (.cancelled, _, _): return .cancelled("cancelled; the process was stopped (\(termination))")
        case (nil, true, _): return .timedOut("exceeded its timeout of \(run.timeoutSeconds ?? 0) s; the process was stopped")
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
            flowRunID: run.id, flowRunName: run.name, parametersJSON: run.parametersJSON, runCount: runCount,
            databaseURL: configuration.databaseURL, engine: engine, logs: logs)
        let limit = safeDuration(seconds: run.timeoutSeconds)
        let seconds = run.timeoutSeconds ?? 0
        let handle = self.handle
        let task = Task<ExecutionOutcome, Never> {
            do {
                return .completed(resultJSON: try await withTimeout(limit) { try await flow.body(context) })
            } catch is RunTimeout {
                return .timedOut("exceeded its timeout of \(seconds) s; the flow was cancelled")
            } catch {
                switch handle.stopReason {
                case .shutdown, .fenced: return .abandoned
                case .cancelled: return .cancelled("cancelled; the flow was cancelled")
                case nil: return .failed("\(error)")
                }
            }
        }
        handle.attach(task)
        let outcome = await task.value
        if case .completed = outcome, let reason = handle.stopReason {
            return reason == .cancelled ? .cancelled("cancelled; the flow finished anyway") : .abandoned
        }
        return outcome
    }
}
