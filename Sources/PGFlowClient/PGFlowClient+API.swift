// Typed calls the HTTP API (and `pgflow api token`) makes for tokens, the audit log, health and metrics.
import Foundation
import PGFlowPostgres

/// What `pgflow.authorize_api_token` says about a presented token.
public struct APITokenGrant: Sendable, Equatable {
    /// The token's name.
    public let name: String
    /// Its scope: `read`, `run` or `admin`.
    public let scope: String
    /// Whether the scope covers what was asked.
    public let allowed: Bool
}

extension PGFlowClient {
    /// `pgflow.create_api_token`: a new token, returned only this once (the database keeps its SHA-256).
    public static func createAPIToken(name: String, scope: String, on c: PostgresConnection) throws -> String {
        try c.query("SELECT pgflow.create_api_token($1, $2)", [name, scope]).scalar(String.self)
    }

    /// `pgflow.revoke_api_token` (SQLSTATE P0002 when no live token has that name).
    public static func revokeAPIToken(name: String, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.revoke_api_token($1)", [name])
    }

    /// `pgflow.authorize_api_token`: nil for an unknown or revoked token.
    public static func authorizeAPIToken(_ token: String, needs scope: String, on c: PostgresConnection) throws -> APITokenGrant? {
        guard let row = try c.query("SELECT * FROM pgflow.authorize_api_token($1, $2)", [token, scope]).first else { return nil }
        return APITokenGrant(name: try row.decode(String.self, "token_name"), scope: try row.decode(String.self, "scope"),
                             allowed: try row.decode(Bool.self, "allowed"))
    }

    /// `pgflow.record_api_audit`: one audit row (a change made through the API and its outcome).
    public static func recordAPIAudit(token: String?, action: String, object: String?, result: String, detailJSON: String? = nil,
                                      on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.record_api_audit($1, $2, $3, $4, $5::jsonb)",
                    [token, action, object, result, detailJSON.map { PostgresRawJSON($0) }])
    }

    /// The database's applied migration versions (empty when it has no pgflow).
    public static func appliedMigrations(on c: PostgresConnection) throws -> [Int] {
        try SchemaMigrator().status(c).applied
    }

    /// The rows `/metrics` turns into gauges: one JSON object of arrays, from the metrics views.
    public static func metricsSnapshotJSON(on c: PostgresConnection) throws -> String {
        try c.query("""
            SELECT json_build_object(
                'runs', (SELECT coalesce(json_agg(m), '[]') FROM pgflow.metrics_flow_runs m),
                'queues', (SELECT coalesce(json_agg(q), '[]') FROM pgflow.metrics_work_queues q),
                'agents_online', (SELECT count(*) FROM pgflow.agents WHERE status = 'ONLINE'),
                'limits', (SELECT coalesce(json_agg(l), '[]') FROM pgflow.concurrency_status l))::text
            """).scalar(String.self)
    }
}

/// Listings of API tokens for the CLI (never the hashes).
extension PGFlowListing {
    /// `pgflow.api_token_list`: live tokens first, then revoked ones.
    public static func apiTokens(json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT name, scope, created_at, revoked_at FROM pgflow.api_token_list ORDER BY revoked_at IS NOT NULL, name, created_at",
                [], json: json, on: c)
    }
}
