// Large results: a flow or task result whose JSON is over the engine's `maxPayloadBytes` (1 MiB by
// default) is written to result storage, and PostgreSQL keeps a reference in its place:
//   {"$pgflow_result": {"storage": "local", "path": "/data/results/<uuid>.json", "bytes": 52428812, "sha256": "…"}}
// Reading a result (`PGFlowEngine.result(of:as:)`, cached and reused task results) follows the reference,
// so callers see the same value either way. Storage is a local directory (PGFLOW_RESULT_STORAGE=/path,
// or a local-file-system block: PGFLOW_RESULT_STORAGE=block:local-file-system/NAME). S3-compatible
// storage is not implemented: an s3-bucket block is refused with an error that says so.
import Crypto
import Foundation
import PGFlowClient

/// Where large results go.
public enum ResultStorage: Sendable, Equatable {
    /// Files in a local directory (created when missing). Every process that reads the result must see it.
    case directory(String)
    /// The directory of a `local-file-system` block (`block:local-file-system/NAME`); an `s3-bucket`
    /// block is refused (not supported yet).
    case block(String)

    /// The environment variable that configures result storage.
    public static let environmentVariable = "PGFLOW_RESULT_STORAGE"

    /// From `PGFLOW_RESULT_STORAGE`: `block:TYPE/NAME`, or a directory path; nil when unset.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> ResultStorage? {
        guard let text = environment[environmentVariable], !text.isEmpty else { return nil }
        return text.hasPrefix("block:") ? .block(String(text.dropFirst(6))) : .directory(text)
    }
}

/// A stored result's reference, as recorded in `pgflow.results`.
struct ResultReference: Codable, Equatable {
    var storage: String
    var path: String
    var bytes: Int
    var sha256: String

    static let marker = "$pgflow_result"
}

extension PGFlowEngine {
    /// `json` itself when it fits `maxPayloadBytes`; else the reference to a copy in result storage
    /// (`payloadTooLarge` when no storage is configured).
    func storeIfLarge(_ json: String, what: @autoclosure () -> String) async throws -> String {
        let bytes = json.utf8.count
        if bytes <= maxPayloadBytes { return json }
        guard let storage = resultStorage else {
            throw FlowRunError.payloadTooLarge(what: what(), bytes: bytes, limit: maxPayloadBytes)
        }
        let directory = try await directory(of: storage)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent("\(UUID().uuidString.lowercased()).json")
        let data = Data(json.utf8)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw FlowRunError.unsupported("cannot write \(what()) (\(bytes) bytes) to result storage \(directory): \(error)")
        }
        let reference = ResultReference(storage: "local", path: path, bytes: bytes, sha256: Self.hexDigest(data))
        return try JSONText.encode([ResultReference.marker: reference])
    }

    /// The JSON text a stored result stands for: `stored` itself, or the file its reference names
    /// (checked against the recorded size and SHA-256).
    func loadResult(_ stored: String) throws -> String {
        guard stored.hasPrefix("{\"\(ResultReference.marker)\""),
              let wrapper = try? JSONText.decode([String: ResultReference].self, from: stored),
              let reference = wrapper[ResultReference.marker] else { return stored }
        guard reference.storage == "local" else {
            throw FlowRunError.unsupported("result storage \(reference.storage) is not supported yet (only local directories)")
        }
        guard let data = FileManager.default.contents(atPath: reference.path) else {
            throw FlowRunError.unsupported("the result stored at \(reference.path) is missing: is result storage mounted on this machine?")
        }
        guard data.count == reference.bytes, Self.hexDigest(data) == reference.sha256 else {
            throw FlowRunError.unsupported("the result stored at \(reference.path) does not match its recorded size and SHA-256")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The result a flow run or task run recorded, decoded (following a result-storage reference); nil
    /// when it recorded none.
    public func result<T: Decodable>(of runID: UUID, as type: T.Type = T.self) async throws -> T? {
        guard let stored = try await pool.withConnection({ try PGFlowClient.result(of: runID, on: $0) }) else { return nil }
        return try JSONText.decode(T.self, from: try loadResult(stored))
    }

    private func directory(of storage: ResultStorage) async throws -> String {
        switch storage {
        case .directory(let path):
            return path
        case .block(let ref):
            if ref.hasPrefix("s3-bucket/") {
                throw FlowRunError.unsupported("storing results in S3 (block \(ref)) is not supported yet: use a local directory (PGFLOW_RESULT_STORAGE=/path) or a local-file-system block")
            }
            guard ref.hasPrefix("local-file-system/") else {
                throw FlowRunError.unsupported("block \(ref) cannot hold results: use a local-file-system block")
            }
            let block = try await Block.load(ref, as: LocalFileSystemBlock.self, engine: self)
            return block.basepath
        }
    }

    private static func hexDigest(_ data: Data) -> String {
        Crypto.SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}
