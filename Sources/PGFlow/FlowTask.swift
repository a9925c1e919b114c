import Foundation

/// A task: a typed async function whose calls inside a flow become task runs in PostgreSQL
/// (Pending → Running → Completed, Failed, TimedOut, Cached, …) with retries, a timeout, caching,
/// tags and hooks. Called outside any flow, it runs as a plain function and records nothing.
///
/// Named `FlowTask` so it never shadows Swift's own `Task`. Several inputs: take a `Codable` struct.
///
/// ```swift
/// let fetch = FlowTask("fetch", retries: RetryPolicy(count: 3, delay: .exponential(base: 1, cap: 20))) { (url: String) in
///     try await download(url)
/// }
/// ```
public struct FlowTask<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    /// Called after a run completed (or was served from the cache) with its output.
    public typealias CompletionHook = @Sendable (TaskRunInfo, Output) async -> Void
    /// Called once after a run failed for good (its retries spent), with the last error.
    public typealias FailureHook = @Sendable (TaskRunInfo, any Error) async -> Void

    /// The task's name: its stable key within a flow run (`pgflow.task_runs.task_key`).
    public let name: String
    /// What the task does.
    public var description: String?
    /// Tags of its task runs (tag concurrency limits `tag:<tag>` apply).
    public var tags: [String]
    /// The task's version (part of its identity for caching).
    public var version: String?
    /// The run name template: `{name}` placeholders are filled from the inputs' top-level JSON fields;
    /// nil: `<task>-<call number>`.
    public var runName: String?
    /// How failed runs are retried.
    public var retries: RetryPolicy
    /// Longer runs are cancelled and fail as TimedOut (the body must honour cancellation).
    public var timeout: Duration?
    /// How results are cached (nil: never).
    public var cache: CachePolicy?
    /// Hooks after completion.
    public var onCompletion: [CompletionHook]
    /// Hooks after final failure.
    public var onFailure: [FailureHook]
    let body: @Sendable (Input) async throws -> Output

    /// Defines a task.
    public init(
        _ name: String, description: String? = nil, tags: [String] = [], version: String? = nil, runName: String? = nil,
        retries: RetryPolicy = .none, timeout: Duration? = nil, cache: CachePolicy? = nil,
        onCompletion: [CompletionHook] = [], onFailure: [FailureHook] = [],
        _ body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.name = name
        self.description = description
        self.tags = tags
        self.version = version
        self.runName = runName
        self.retries = retries
        self.timeout = timeout
        self.cache = cache
        self.onCompletion = onCompletion
        self.onFailure = onFailure
        self.body = body
    }

    /// Runs the task: a task run of the current flow run, or a plain call outside any flow.
    public func callAsFunction(_ input: Input) async throws -> Output {
        try await execute(input)
    }

    /// The same task with other settings (`fetch.with { $0.retries = .none }`).
    public func with(_ change: (inout FlowTask) -> Void) -> FlowTask {
        var copy = self
        change(&copy)
        return copy
    }
}

extension FlowTask where Input == Nothing {
    /// Defines a task that takes no input.
    public init(
        _ name: String, description: String? = nil, tags: [String] = [], version: String? = nil,
        retries: RetryPolicy = .none, timeout: Duration? = nil, cache: CachePolicy? = nil,
        onCompletion: [CompletionHook] = [], onFailure: [FailureHook] = [],
        _ body: @escaping @Sendable () async throws -> Output
    ) {
        self.init(name, description: description, tags: tags, version: version, retries: retries, timeout: timeout,
                  cache: cache, onCompletion: onCompletion, onFailure: onFailure) { (_: Nothing) in try await body() }
    }

    /// Runs the task.
    public func callAsFunction() async throws -> Output { try await execute(Nothing()) }
}

/// What hooks learn about a task run.
public struct TaskRunInfo: Sendable {
    /// The task's name.
    public let taskName: String
    /// The task run's id (nil if PostgreSQL had not created it yet).
    public let taskRunID: UUID?
    /// The flow run it belongs to.
    public let flowRunID: UUID
    /// The state it ended in (`Completed`, `Cached`, `Failed`, `TimedOut`, …).
    public let stateName: String
}
