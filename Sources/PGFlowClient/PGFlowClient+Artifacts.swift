// Typed calls for artifacts and variables (sql/migrations/0006_extras.sql).
import Foundation
import PGFlowPostgres

/// The kinds of artifact pgflow stores.
public enum ArtifactType: String, Sendable, CaseIterable {
    /// A markdown document (data: a JSON string).
    case markdown
    /// A table (data: an array of row objects or arrays).
    case table
    /// A link (data: {"url": …, "text": …}).
    case link
    /// A progress value from 0 to 100, updated in place.
    case progress
}

extension PGFlowClient {
    /// `pgflow.create_artifact`: the new artifact's id (with a key: that key's next version).
    public static func createArtifact(type: ArtifactType, dataJSON: String, key: String? = nil, description: String? = nil,
                                      flowRunID: UUID? = nil, taskRunID: UUID? = nil, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.create_artifact($1, $2::jsonb, $3, $4, $5, $6)",
                    [type.rawValue, PostgresRawJSON(dataJSON), key, description, flowRunID, taskRunID]).scalar(UUID.self)
    }

    /// `pgflow.update_progress_artifact`.
    public static func updateProgressArtifact(_ id: UUID, progress: Double, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.update_progress_artifact($1, $2)", [id, progress])
    }

    /// `pgflow.set_variable`: `valueJSON` is any JSON value.
    public static func setVariable(_ key: String, valueJSON: String, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.set_variable($1, $2::jsonb)", [key, PostgresRawJSON(valueJSON)])
    }

    /// `pgflow.get_variable`: the value as JSON text, or nil when it is not set.
    public static func variable(_ key: String, on c: PostgresConnection) throws -> String? {
        try c.query("SELECT pgflow.get_variable($1)::text", [key]).first?.decode(String?.self, at: 0)
    }

    /// `pgflow.delete_variable`: whether it existed.
    @discardableResult
    public static func deleteVariable(_ key: String, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT pgflow.delete_variable($1)", [key]).scalar(Bool.self)
    }
}

extension PGFlowListing {
    /// Artifacts (`pgflow.artifact_list`), newest first: of a flow run, of a key (every version), or all.
    public static func artifacts(flowRun: UUID?, key: String?, latestOnly: Bool = false, limit: Int = 50, json: Bool,
                                 on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT id, key, version, type, description, flow_run_name AS flow_run, created_at
                   \(json ? ", latest, data, flow_run_id, task_run_id, updated_at" : "")
              FROM pgflow.artifact_list
             WHERE ($1::uuid IS NULL OR flow_run_id = $1) AND ($2::text IS NULL OR key = $2) AND (NOT $3 OR latest)
             ORDER BY created_at DESC, version DESC NULLS LAST, id LIMIT $4
            """, [flowRun, key, latestOnly, limit], json: json, on: c)
    }

    /// One artifact by id, with its data.
    public static func artifact(_ id: UUID, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT * FROM pgflow.artifact_list WHERE id = $1", [id], json: json, on: c)
    }

    /// Variables (`pgflow.variable_list`).
    public static func variables(json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT key, value, updated_at FROM pgflow.variable_list ORDER BY key", [], json: json, on: c)
    }
}
