// Typed calls for blocks and pause input (sql/migrations/0006_extras.sql).
import Foundation
import PGFlowPostgres

extension PGFlowClient {
    // MARK: Blocks

    /// `pgflow.create_block_type`: creates or replaces a block type with its JSON schema.
    public static func createBlockType(_ slug: String, schemaJSON: String, description: String? = nil, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.create_block_type($1, $2::jsonb, $3)", [slug, PostgresRawJSON(schemaJSON), description])
    }

    /// `pgflow.save_block`: creates or replaces block `type/name` (checked against its type's schema).
    @discardableResult
    public static func saveBlock(_ ref: String, dataJSON: String, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.save_block($1, $2::jsonb)", [ref, PostgresRawJSON(dataJSON)]).scalar(UUID.self)
    }

    /// `pgflow.get_block`: the block's data as JSON text (secret fields are `{"secret": NAME}` references).
    public static func block(_ ref: String, on c: PostgresConnection) throws -> String {
        try c.query("SELECT pgflow.get_block($1)::text", [ref]).scalar(String.self)
    }

    /// `pgflow.delete_block`: whether it existed.
    @discardableResult
    public static func deleteBlock(_ ref: String, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT pgflow.delete_block($1)", [ref]).scalar(Bool.self)
    }

    // MARK: Pause input

    /// `pgflow.request_flow_run_input`: declares the JSON schema of the input the run will wait for.
    public static func requestFlowRunInput(_ flowRunID: UUID, schemaJSON: String, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.request_flow_run_input($1, $2::jsonb)", [flowRunID, PostgresRawJSON(schemaJSON)])
    }

    /// `pgflow.resume_flow_run_with_input`: resumes with input that must fit the declared schema.
    public static func resumeFlowRun(_ flowRunID: UUID, inputJSON: String, on c: PostgresConnection) throws -> TransitionResult {
        guard let row = try c.query("SELECT * FROM pgflow.resume_flow_run_with_input($1, $2::jsonb)",
                                    [flowRunID, PostgresRawJSON(inputJSON)]).first else {
            throw PostgresError(kind: .decoding, message: "resume_flow_run returned no row")
        }
        return try TransitionResult(row: row)
    }

    /// `pgflow.flow_run_input`: the input the run was resumed with, as JSON text.
    public static func flowRunInput(_ flowRunID: UUID, on c: PostgresConnection) throws -> String? {
        try c.query("SELECT pgflow.flow_run_input($1)::text", [flowRunID]).first?.decode(String?.self, at: 0)
    }
}

extension PGFlowListing {
    /// Blocks (`pgflow.block_list`), optionally of one type.
    public static func blocks(type: String?, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT block, block_type, updated_at \(json ? ", data, name, created_at, id" : "")
              FROM pgflow.block_list WHERE $1::text IS NULL OR block_type = $1 ORDER BY block
            """, [type], json: json, on: c)
    }

    /// Block types (`pgflow.block_type_list`).
    public static func blockTypes(json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT slug, builtin, blocks, description \(json ? ", schema" : "") FROM pgflow.block_type_list ORDER BY slug",
                [], json: json, on: c)
    }
}
