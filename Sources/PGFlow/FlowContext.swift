import Foundation
import Logging
import PGFlowClient
import Synchronization

/// The flow run the current code runs in (internal; `FlowContext` is the public view).
final class FlowRunScope: Sendable {
    let engine: PGFlowEngine
    let flowRunID: UUID
    let flowName: String
    let flowRunName: String
    let parametersJSON: String
    let runCount: Int
    let recorder: TaskRunRecorder
    let logPrints: Bool
    private let counters = Mutex<[String: Int]>([:])
    private let outstanding = Mutex<[(wait: @Sendable () async -> Void, cancel: @Sendable () -> Void)]>([])

    @TaskLocal static var current: FlowRunScope?
    @TaskLocal static var taskRun: TaskRunRecord?

    init(engine: PGFlowEngine, flowRunID: UUID, flowName: String, flowRunName: String, parametersJSON: String,
         runCount: Int, logPrints: Bool) {
        self.engine = engine
        self.flowRunID = flowRunID
        self.flowName = flowName
        self.flowRunName = flowRunName
        self.parametersJSON = parametersJSON
        self.runCount = runCount
        self.recorder = TaskRunRecorder(pool: engine.pool)
        self.logPrints = logPrints
    }

    /// The next call number of a task within this flow run (its dynamic key): deterministic for a
    /// deterministic flow, so a retried flow run finds the task runs of its earlier attempts.
    func nextDynamicKey(_ taskKey: String) -> String {
        counters.withLock { c in
            let n = c[taskKey, default: 0]
            c[taskKey] = n + 1
            return String(n)
        }
    }

    /// Remembers a submitted task so the flow waits for it before it ends.
    func track(wait: @escaping @Sendable () async -> Void, cancel: @escaping @Sendable () -> Void) {
        outstanding.withLock { $0.append((wait, cancel)) }
    }

    /// Waits for every submitted task still running.
    func waitForSubmitted() async {
        while true {
            let waits = outstanding.withLock { w in
                defer { w.removeAll() }
                return w.map(\.wait)
            }
            if waits.isEmpty { return }
            for wait in waits { await wait() }
        }
    }

    /// Cancels the submitted tasks still running (the flow ended without waiting for them).
    func cancelSubmitted() {
        for cancel in outstanding.withLock({ $0.map(\.cancel) }) { cancel() }
    }

    /// Writes a log line for this run (and the current task run, if any).
    func log(level: Int, name: String, message: String, taskRun: TaskRunRecord? = FlowRunScope.taskRun) {
        recorder.log(.init(flowRunID: flowRunID, record: taskRun, level: level, name: name, message: message, timestamp: Date()))
    }
}

/// The flow run (and task run) the calling code runs in.
public struct FlowContext: Sendable {
    /// The flow run's id.
    public let flowRunID: UUID
    /// The flow's name.
    public let flowName: String
    /// The flow run's name.
    public let flowRunName: String
    /// The flow run's parameters as JSON text (an object).
    public let parametersJSON: String
    /// Which attempt of the flow run this is (1 on the first).
    public let runCount: Int
    /// The task run's id, inside a task (nil in the flow's own code, or before PostgreSQL created it).
    public let taskRunID: UUID?
    /// The task's name, inside a task.
    public let taskName: String?

    /// The current context, or nil outside any flow.
    public static var current: FlowContext? {
        guard let scope = FlowRunScope.current else { return nil }
        let task = FlowRunScope.taskRun
        return FlowContext(flowRunID: scope.flowRunID, flowName: scope.flowName, flowRunName: scope.flowRunName,
                           parametersJSON: scope.parametersJSON, runCount: scope.runCount, taskRunID: task?.id,
                           taskName: task?.spec.taskKey)
    }

    /// A logger whose records go to `pgflow.logs`, tagged with this flow run (and task run).
    public var logger: Logger { runLogger() }
}
