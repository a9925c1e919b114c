// Artifacts: markdown, tables, links and progress attached to the current flow run (and task run).
// A key makes an artifact versioned: creating one with a key used before adds its next version.
//
//   try await createMarkdownArtifact("# Report\n42 rows", key: "daily-report")
//   let progress = try await createProgressArtifact(0, description: "rows loaded")
//   try await progress.update(50)
import Foundation
import PGFlowClient

/// A progress artifact; `update` changes its value in place.
public struct ProgressArtifact: Sendable {
    /// The artifact's id.
    public let id: UUID
    let engine: PGFlowEngine

    /// Sets the progress (0 to 100).
    public func update(_ progress: Double) async throws {
        let id = self.id
        try await engine.pool.withConnection { try PGFlowClient.updateProgressArtifact(id, progress: progress, on: $0) }
    }
}

/// Creates a markdown artifact of the current run; returns its id.
@discardableResult
public func createMarkdownArtifact(_ markdown: String, key: String? = nil, description: String? = nil) async throws -> UUID {
    try await createArtifact(.markdown, JSONText.encode(markdown), key: key, description: description)
}

/// Creates a table artifact of the current run from rows (each encodes to a JSON object or array); returns its id.
@discardableResult
public func createTableArtifact<Row: Encodable>(_ rows: [Row], key: String? = nil, description: String? = nil) async throws -> UUID {
    try await createArtifact(.table, JSONText.encode(rows), key: key, description: description)
}

/// Creates a link artifact of the current run; returns its id.
@discardableResult
public func createLinkArtifact(_ url: String, text: String? = nil, key: String? = nil, description: String? = nil) async throws -> UUID {
    var link = ["url": url]
    link["text"] = text
    return try await createArtifact(.link, JSONText.encode(link), key: key, description: description)
}

/// Creates a progress artifact (0 to 100) of the current run; update it with `ProgressArtifact.update`.
public func createProgressArtifact(_ progress: Double = 0, key: String? = nil, description: String? = nil) async throws -> ProgressArtifact {
    let engine = try FlowRunScope.current?.engine ?? PGFlowEngine.resolve()
    let id = try await createArtifact(.progress, JSONText.encode(progress), key: key, description: description)
    return ProgressArtifact(id: id, engine: engine)
}

/// Creates an artifact of the current flow run and task run (outside a flow: of the run in
/// PGFLOW_FLOW_RUN_ID when set, else of no run).
private func createArtifact(_ type: ArtifactType, _ dataJSON: String, key: String?, description: String?) async throws -> UUID {
    let scope = FlowRunScope.current
    let engine = try scope?.engine ?? PGFlowEngine.resolve()
    let flowRunID = scope?.flowRunID ?? ProcessInfo.processInfo.environment["PGFLOW_FLOW_RUN_ID"].flatMap(UUID.init(uuidString:))
    if let scope { try await scope.recorder.flushed() }  // the task run row exists before it is referenced
    let taskRunID = scope == nil ? nil : FlowRunScope.taskRun?.id
    return try await engine.pool.withConnection { c in
        try PGFlowClient.createArtifact(type: type, dataJSON: dataJSON, key: key, description: description,
                                        flowRunID: flowRunID, taskRunID: taskRunID, on: c)
    }
}
