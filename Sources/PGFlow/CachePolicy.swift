import Foundation

/// What makes two task runs share a cached result. Combine components with `+`:
/// `.inputs + .taskIdentity` (the default when a task caches), `.flowParameters`, or your own `.key { }`.
///
/// The cache lives in PostgreSQL (`pgflow.task_run_cache`), so every agent and every local run shares
/// it: a task run whose key has a valid entry completes as Cached with the stored result, without running.
public struct CachePolicy: Sendable {
    enum Component: Sendable {
        case inputs, taskIdentity, flowParameters, flowRun
        case custom(@Sendable (CacheKeyContext) -> String)
    }

    var components: [Component]
    /// Seconds an entry stays valid (nil: forever).
    public var expiration: Duration?
    /// Run the task even when an entry exists, and replace the entry with the new result.
    public var refresh: Bool

    /// The task's inputs (a SHA-256 of their sorted-key JSON).
    public static let inputs = CachePolicy(components: [.inputs])
    /// The task's identity: its name and version.
    public static let taskIdentity = CachePolicy(components: [.taskIdentity])
    /// The enclosing flow run's parameters.
    public static let flowParameters = CachePolicy(components: [.flowParameters])
    /// The enclosing flow run (results are reused only within one run, for example across its retries).
    public static let flowRun = CachePolicy(components: [.flowRun])

    /// A key you compute.
    public static func key(_ make: @escaping @Sendable (CacheKeyContext) -> String) -> CachePolicy {
        CachePolicy(components: [.custom(make)])
    }

    init(components: [Component], expiration: Duration? = nil, refresh: Bool = false) {
        self.components = components
        self.expiration = expiration
        self.refresh = refresh
    }

    /// Both policies' components (the key changes when any of them does).
    public static func + (lhs: CachePolicy, rhs: CachePolicy) -> CachePolicy {
        CachePolicy(components: lhs.components + rhs.components, expiration: lhs.expiration ?? rhs.expiration,
                    refresh: lhs.refresh || rhs.refresh)
    }

    /// The same policy with entries valid for `duration`.
    public func expiring(after duration: Duration) -> CachePolicy {
        var copy = self
        copy.expiration = duration
        return copy
    }

    /// The same policy that always runs and overwrites the entry.
    public func refreshing(_ refresh: Bool = true) -> CachePolicy {
        var copy = self
        copy.refresh = refresh
        return copy
    }

    /// The cache key: a SHA-256 over the components, prefixed with the task name for readability.
    func key(_ context: CacheKeyContext) -> String {
        var parts: [String] = []
        for component in components {
            switch component {
            case .inputs: parts.append("inputs=" + context.inputsJSON)
            case .taskIdentity: parts.append("task=\(context.taskName)@\(context.taskVersion ?? "")")
            case .flowParameters: parts.append("parameters=" + context.flowParametersJSON)
            case .flowRun: parts.append("flow_run=" + context.flowRunID.uuidString.lowercased())
            case .custom(let make): parts.append("custom=" + make(context))
            }
        }
        return context.taskName + ":" + SHA256.hex(parts.joined(separator: "\u{1F}"))
    }
}

/// What a cache key may depend on.
public struct CacheKeyContext: Sendable {
    /// The task's name.
    public let taskName: String
    /// The task's version, if given.
    public let taskVersion: String?
    /// The task's inputs as sorted-key JSON.
    public let inputsJSON: String
    /// The flow run's parameters as sorted-key JSON.
    public let flowParametersJSON: String
    /// The flow run's id.
    public let flowRunID: UUID
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
