import Foundation
import PGFlowClient

/// pgflow variables: named JSON values kept in PostgreSQL (`pgflow.variables`), shared by every flow,
/// the CLI (`pgflow variable`) and deployment parameters (`{{ pgflow.variables.NAME }}`).
public enum Variable {
    /// The variable's value decoded as `T`, or nil when it is not set.
    public static func get<T: Decodable>(_ name: String, as type: T.Type = T.self) async throws -> T? {
        let engine = try FlowRunScope.current?.engine ?? PGFlowEngine.resolve()
        guard let json = try await engine.pool.withConnection({ try PGFlowClient.variable(name, on: $0) }) else { return nil }
        return try JSONText.decode(T.self, from: json)
    }

    /// Sets the variable to `value` (any value that encodes to JSON).
    public static func set<T: Encodable>(_ name: String, _ value: T) async throws {
        let engine = try FlowRunScope.current?.engine ?? PGFlowEngine.resolve()
        let json = try JSONText.encode(value)
        try await engine.pool.withConnection { try PGFlowClient.setVariable(name, valueJSON: json, on: $0) }
    }

    /// Deletes the variable; returns whether it was set.
    @discardableResult
    public static func unset(_ name: String) async throws -> Bool {
        let engine = try FlowRunScope.current?.engine ?? PGFlowEngine.resolve()
        return try await engine.pool.withConnection { try PGFlowClient.deleteVariable(name, on: $0) }
    }
}
