// Shared helpers of the scheduler tests: a pool over a fresh test database and fixed instants.
import Foundation
import Logging
import PGFlowPostgres
import PGFlowTestSupport

/// A test database with a pool and a blocking connection for setup and checks.
struct Fixture: Sendable {
    let db: TestDatabase
    let pool: PostgresPool
    let logger = Logger(label: "test.scheduler")

    static func with<T>(_ body: (Fixture) async throws -> T) async throws -> T {
        try await TestDatabase.with { db in
            let pool = PostgresPool(configuration: db.configuration, maxConnections: 4)
            defer { pool.close() }
            return try await body(Fixture(db: db, pool: pool))
        }
    }

    /// One statement on a pooled connection.
    @discardableResult
    func sql(_ text: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> PostgresResult {
        try await pool.query(text, parameters)
    }

    func int(_ text: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> Int {
        try await sql(text, parameters).scalar(Int.self)
    }

    func strings(_ text: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> [String] {
        try await sql(text, parameters).rows.map { try $0.decode(String.self, at: 0) }
    }

    /// Creates a deployment (`flow/name`, queue default) and returns its id.
    @discardableResult
    func deployment(_ flow: String, _ name: String, retries: Int = 0, limit: Int? = nil, at now: Date) async throws -> UUID {
        try await sql("SELECT pgflow.create_deployment($1, $2, './run.sh', p_retries => $3, p_concurrency_limit => $4, p_now => $5)",
                      [flow, name, retries, limit, now]).scalar(UUID.self)
    }

    /// Adds a schedule and returns its id.
    @discardableResult
    func schedule(_ deployment: String, _ kind: String, _ expression: String, zone: String = "UTC", anchor: Date? = nil, at now: Date) async throws -> UUID {
        try await sql("SELECT pgflow.create_deployment_schedule($1, $2, $3, $4, p_anchor_date => $5, p_now => $6)",
                      [deployment, kind, expression, zone, anchor, now]).scalar(UUID.self)
    }

    /// Registers an agent at `now`.
    func agent(at now: Date) async throws -> UUID {
        try await sql("SELECT pgflow.register_agent('test-agent', ARRAY['default'], $1)", [now]).scalar(UUID.self)
    }

    /// Claims (and starts) every run due at `now`; returns their ids.
    @discardableResult
    func claimAll(agent: UUID, at now: Date) async throws -> [UUID] {
        try await sql("SELECT flow_run_id FROM pgflow.claim_flow_runs($1, NULL, 10000, true, $2)", [agent, now])
            .rows.map { try $0.decode(UUID.self, at: 0) }
    }
}

/// An instant from ISO 8601 text (`2030-01-01T00:00:00Z`).
func instant(_ text: String) -> Date {
    ISO8601DateFormatter().date(from: text)!
}
