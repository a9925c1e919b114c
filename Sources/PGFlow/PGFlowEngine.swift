// PGFlow: the Swift SDK. Flows and tasks are values built from closures with typed Codable inputs and
// outputs; calling them records flow runs, task runs, states, logs and results in PostgreSQL through
// pgflow's SQL functions (which own every rule: retries, caching, limits). A flow called directly
// creates its flow run (local mode); inside an agent the same flow attaches to the run the agent claimed.
//
//   let fetch = FlowTask("fetch", retries: RetryPolicy(count: 3, delay: .fixed(1))) { (url: String) in try await get(url) }
//   let etl = Flow("etl") { (url: String) in try await fetch(url).count }
//   let rows = try await etl("https://example.com")
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import Synchronization

/// Where flow runs are recorded: a connection pool to a pgflow database, and the SDK's limits.
///
/// A flow called outside an agent uses the engine bound with `activate { }`, else the one set by
/// `bootstrap(databaseURL:)`, else one built from `PGFLOW_DATABASE_URL`.
public final class PGFlowEngine: Sendable {
    /// The pool every flow run of this engine uses.
    public let pool: PostgresPool
    /// The largest JSON result or input a task or flow may record (bytes).
    public let maxPayloadBytes: Int
    /// Where results over `maxPayloadBytes` go (nil: such results fail); default from PGFLOW_RESULT_STORAGE.
    public let resultStorage: ResultStorage?

    @TaskLocal static var bound: PGFlowEngine?
    private static let fallback = Mutex<PGFlowEngine?>(nil)
    private static let shared = Mutex<[String: PGFlowEngine]>([:])

    /// Creates an engine over a pool (give it at least 2 connections).
    public init(pool: PostgresPool, maxPayloadBytes: Int = 1 << 20,
                resultStorage: ResultStorage? = ResultStorage.fromEnvironment()) {
        self.pool = pool
        self.maxPayloadBytes = maxPayloadBytes
        self.resultStorage = resultStorage
    }

    /// Creates an engine with its own pool.
    public convenience init(databaseURL: String, maxConnections: Int = 4, maxPayloadBytes: Int = 1 << 20,
                            resultStorage: ResultStorage? = ResultStorage.fromEnvironment()) {
        self.init(pool: PostgresPool(configuration: PostgresConfiguration(databaseURL, applicationName: "pgflow-sdk"),
                                     maxConnections: maxConnections),
                  maxPayloadBytes: maxPayloadBytes, resultStorage: resultStorage)
    }

    /// Makes `self` the engine of every flow called in `body` (and the tasks it starts).
    public func activate<T>(_ body: () async throws -> T) async rethrows -> T {
        try await Self.$bound.withValue(self) { try await body() }
    }

    /// Sets the process-wide engine used when none is bound.
    public static func bootstrap(databaseURL: String, maxConnections: Int = 4) {
        let engine = PGFlowEngine(databaseURL: databaseURL, maxConnections: maxConnections)
        fallback.withLock { $0 = engine }
    }

    /// One engine per database URL for this process (the agent's in-process flows use it).
    public static func shared(databaseURL: String) -> PGFlowEngine {
        shared.withLock { engines in
            if let engine = engines[databaseURL] { return engine }
            let engine = PGFlowEngine(databaseURL: databaseURL, maxConnections: 4)
            engines[databaseURL] = engine
            return engine
        }
    }

    /// The engine a flow called now uses.
    static func resolve() throws -> PGFlowEngine {
        if let engine = bound { return engine }
        if let engine = fallback.withLock({ $0 }) { return engine }
        let url = ProcessInfo.processInfo.environment["PGFLOW_DATABASE_URL"] ?? ""
        if url.isEmpty { throw FlowRunError.noDatabase }
        return shared(databaseURL: url)
    }

    /// Checks a JSON payload against `maxPayloadBytes`.
    func check(_ json: String, what: @autoclosure () -> String) throws {
        let bytes = json.utf8.count
        if bytes > maxPayloadBytes { throw FlowRunError.payloadTooLarge(what: what(), bytes: bytes, limit: maxPayloadBytes) }
    }
}
