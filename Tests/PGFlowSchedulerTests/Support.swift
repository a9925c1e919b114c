// Shared helpers of the scheduler tests: a pool over a fresh test database, fixed instants, and the
// SQL the scheduler needs that sql/schema.sql does not have yet (see PendingSchema).
import Foundation
import Logging
import PGFlowPostgres
import PGFlowTestSupport

/// The schema additions the scheduler's missed-run policy is written against, exactly as proposed
/// for sql/schema.sql. Idempotent, so it keeps working once the real migration has them.
enum PendingSchema {
    static let missedRunPolicy = """
        ALTER TABLE pgflow.deployments ADD COLUMN IF NOT EXISTS missed_run_policy text
            CHECK (missed_run_policy IN ('run_all', 'latest', 'skip'));
        CREATE OR REPLACE FUNCTION pgflow.set_deployment_missed_run_policy(p_name text, p_policy text,
                                                                           p_now timestamptz DEFAULT now())
        RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            IF p_policy IS NOT NULL AND p_policy NOT IN ('run_all', 'latest', 'skip') THEN
                RAISE EXCEPTION 'pgflow: invalid missed-run policy %', quote_literal(p_policy)
                    USING ERRCODE = '22023', HINT = 'use ''run_all'', ''latest'' or ''skip'' (NULL: the scheduler''s default)';
            END IF;
            UPDATE pgflow.deployments SET missed_run_policy = p_policy, updated_at = p_now
             WHERE id = pgflow._deployment_id(p_name);
        END $$;
        """
}

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

    /// Several statements (DDL) on a pooled connection.
    func script(_ text: String) async throws {
        try await pool.withConnection { try $0.execute(script: text) }
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
        try await sql("SELECT flow_run_id FROM pgflow.claim_flow_runs($1, NULL, 100000, true, $2)", [agent, now])
            .rows.map { try $0.decode(UUID.self, at: 0) }
    }
}

/// An instant from ISO 8601 text (`2030-01-01T00:00:00Z`).
func instant(_ text: String) -> Date {
    ISO8601DateFormatter().date(from: text)!
}
