// Helpers of the SDK tests: each test gets its own database (with the schema) and an engine over it.
import Foundation
import PGFlow
import PGFlowClient
import PGFlowPostgres
import PGFlowTestSupport
import Synchronization

/// A test's database, engine and a connection for reading what was recorded.
struct SDKTestContext: Sendable {
    let database: TestDatabase
    let engine: PGFlowEngine

    /// Rows of a query, each as its column texts.
    func rows(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> [[String?]] {
        try await engine.pool.query(sql, parameters).rows.map(\.values)
    }

    /// The first column of every row.
    func column(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> [String?] {
        try await rows(sql, parameters).map { $0[0] }
    }

    /// The state names of a task run's (or flow run's) history, in order.
    func taskStates(_ taskRunID: String) async throws -> [String] {
        try await column("SELECT state_name FROM pgflow.task_run_states WHERE task_run_id = $1::uuid ORDER BY id", [taskRunID]).map { $0! }
    }

    /// The state names of a flow run's history, in order.
    func flowStates(_ flowRunID: UUID) async throws -> [String] {
        try await column("SELECT state_name FROM pgflow.flow_run_states WHERE flow_run_id = $1 ORDER BY id", [flowRunID]).map { $0! }
    }
}

/// Runs `body` with a fresh database and an engine over it (bound as the current engine).
func withSDK<T: Sendable>(_ body: (SDKTestContext) async throws -> T) async throws -> T {
    try await TestDatabase.with { database in
        let pool = PostgresPool(configuration: database.configuration, maxConnections: 4)
        defer { pool.close() }
        let context = SDKTestContext(database: database, engine: PGFlowEngine(pool: pool, maxPayloadBytes: 4_096))
        return try await context.engine.activate { try await body(context) }
    }
}

/// A thread-safe counter for observing how often code ran.
final class Counter: Sendable {
    private let value = Mutex(0)
    private let peak = Mutex(0)

    /// Adds one and returns the new value.
    @discardableResult
    func increment() -> Int { value.withLock { $0 += 1; return $0 } }

    /// Subtracts one.
    func decrement() { value.withLock { $0 -= 1 } }

    /// Adds one, remembering the highest value seen.
    func enter() { let v = increment(); peak.withLock { $0 = max($0, v) } }

    /// The current value.
    var count: Int { value.withLock { $0 } }

    /// The highest value `enter` saw.
    var maximum: Int { peak.withLock { $0 } }
}

/// An error tests throw on purpose.
struct Boom: Error, CustomStringConvertible {
    var description: String { "boom" }
}
