import Foundation
import PGFlowClient
import PGFlowSecrets

/// Blocks: typed configuration documents stored in PostgreSQL (`pgflow block create TYPE/NAME -f
/// block.yaml`), checked against their type's JSON schema on every write. Secret fields are stored as
/// `{"secret": "NAME"}` references; `load` opens them here with the secret key (PGFLOW_SECRET_KEY or
/// PGFLOW_SECRET_KEY_FILE) and hands the plaintext to the decoded value.
public enum Block {
    /// Block `TYPE/NAME` decoded as `T`, secret references replaced by their plaintext. The key is
    /// needed only when the block references secrets.
    public static func load<T: Decodable>(_ ref: String, as type: T.Type = T.self, key: SecretKey? = nil) async throws -> T {
        try await load(ref, as: type, key: key, engine: FlowRunScope.current?.engine ?? PGFlowEngine.resolve())
    }

    /// `load` with a given engine.
    public static func load<T: Decodable>(_ ref: String, as type: T.Type = T.self, key: SecretKey? = nil,
                                          engine: PGFlowEngine) async throws -> T {
        let json = try await engine.pool.withConnection { c -> String in
            let stored = try PGFlowClient.block(ref, on: c)
            guard stored.contains("\"secret\"") else { return stored }
            var lazyStore: SecretStore?
            func store() throws -> SecretStore {
                if let lazyStore { return lazyStore }
                let made = SecretStore(key: try key ?? SecretKey.fromEnvironment())
                lazyStore = made
                return made
            }
            let value = try resolvingSecrets(JSONSerialization.jsonObject(with: Data(stored.utf8), options: [.fragmentsAllowed])) {
                try store().get($0, on: c)
            }
            return String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]), as: UTF8.self)
        }
        return try JSONText.decode(T.self, from: json)
    }

    /// Saves `value` as block `TYPE/NAME` (checked against the type's schema in PostgreSQL).
    public static func save<T: Encodable>(_ ref: String, _ value: T) async throws {
        let engine = try FlowRunScope.current?.engine ?? PGFlowEngine.resolve()
        let json = try JSONText.encode(value)
        try await engine.pool.withConnection { try PGFlowClient.saveBlock(ref, dataJSON: json, on: $0) }
    }

    /// Replaces every object that is exactly `{"secret": NAME}` with `open(NAME)`.
    static func resolvingSecrets(_ value: Any, _ open: (String) throws -> String) throws -> Any {
        if let object = value as? [String: Any] {
            if object.count == 1, let name = object["secret"] as? String { return try open(name) }
            return try object.mapValues { try resolvingSecrets($0, open) }
        }
        if let array = value as? [Any] { return try array.map { try resolvingSecrets($0, open) } }
        return value
    }
}

/// A secret field as it arrives in a loaded block: the plaintext.
public typealias SecretValue = String

/// The built-in `webhook` block.
public struct WebhookBlock: Codable, Sendable, Equatable {
    /// Where to send requests.
    public var url: String
    /// POST, PUT or GET.
    public var method: String?
    /// Extra request headers.
    public var headers: [String: String]?
    /// A bearer token (a secret).
    public var token: SecretValue?
}

/// The built-in `slack-webhook` block.
public struct SlackWebhookBlock: Codable, Sendable, Equatable {
    /// The incoming-webhook URL (a secret).
    public var url: SecretValue
    /// The channel to post to.
    public var channel: String?
}

/// The built-in `database-credentials` block.
public struct DatabaseCredentialsBlock: Codable, Sendable, Equatable {
    /// postgresql, mysql or sqlite.
    public var driver: String?
    /// The host name.
    public var host: String
    /// The port.
    public var port: Int?
    /// The database name.
    public var database: String
    /// The user name.
    public var username: String
    /// The password (a secret).
    public var password: SecretValue?
    /// disable, prefer, require or verify-full.
    public var sslmode: String?
}

/// The built-in `s3-bucket` block (configuration only: storing results in S3 is not supported yet).
public struct S3BucketBlock: Codable, Sendable, Equatable {
    /// The bucket.
    public var bucket: String
    /// A key prefix.
    public var prefix: String?
    /// The endpoint of an S3-compatible service.
    public var endpoint_url: String?
    /// The region.
    public var region: String?
    /// The access key id.
    public var access_key_id: String?
    /// The secret access key (a secret).
    public var secret_access_key: SecretValue?
}

/// The built-in `local-file-system` block (result storage in a directory).
public struct LocalFileSystemBlock: Codable, Sendable, Equatable {
    /// The directory.
    public var basepath: String
}
