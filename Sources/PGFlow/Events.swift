// Events from flows and scripts (docs/events.md): anything a flow emits can trigger automations.
//
//   try await emitEvent("acme.file.arrived", resource: ["id": "s3://raw/2026-12-04.csv"], payload: ["rows": 1200])
//
// Inside a flow run, the event names the run as a related resource ({"role": "flow-run", "id": …}).
import Foundation
import PGFlowClient

/// Emits an event with a payload (encoded to a JSON object); returns its id. Names starting `pgflow.`
/// are the engine's own.
@discardableResult
public func emitEvent<Payload: Encodable & Sendable>(_ event: String, resource: [String: String] = [:], payload: Payload) async throws -> UUID {
    let scope = FlowRunScope.current
    let engine = try scope?.engine ?? PGFlowEngine.resolve()
    let flowRunID = scope?.flowRunID ?? ProcessInfo.processInfo.environment["PGFLOW_FLOW_RUN_ID"].flatMap(UUID.init(uuidString:))
    let related = flowRunID.map { [["role": "flow-run", "id": $0.uuidString.lowercased()]] } ?? []
    let resourceJSON = try JSONText.encode(resource)
    let payloadJSON = try JSONText.encode(payload)
    let relatedJSON = try JSONText.encode(related)
    return try await engine.pool.withConnection { c in
        try PGFlowClient.emitEvent(event, resourceJSON: resourceJSON, payloadJSON: payloadJSON, relatedJSON: relatedJSON, on: c)
    }
}

/// Emits an event without a payload; returns its id.
@discardableResult
public func emitEvent(_ event: String, resource: [String: String] = [:]) async throws -> UUID {
    try await emitEvent(event, resource: resource, payload: [String: String]())
}
