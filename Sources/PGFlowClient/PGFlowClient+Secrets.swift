// Typed calls for sealed secrets and deployment secret environments (sql/migrations/0006_extras.sql).
// Secrets arrive here already sealed: PGFlowSecrets encrypts and decrypts; these calls move ciphertext only.
import Foundation
import PGFlowPostgres

/// A sealed secret as PostgreSQL stores it.
public struct SealedSecret: Sendable, Equatable {
    /// The secret's name.
    public let name: String
    /// AES-GCM nonce ‖ ciphertext ‖ tag.
    public let ciphertext: Data
    /// The id of the key that sealed it.
    public let keyID: String

    /// Creates a value.
    public init(name: String, ciphertext: Data, keyID: String) {
        self.name = name
        self.ciphertext = ciphertext
        self.keyID = keyID
    }
}

extension PGFlowClient {
    // MARK: Sealed secrets

    /// `pgflow.set_secret`.
    public static func setSecret(_ secret: SealedSecret, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.set_secret($1, decode($2, 'base64'), $3)",
                    [secret.name, secret.ciphertext.base64EncodedString(), secret.keyID])
    }

    /// `pgflow.get_secret`: nil when there is none.
    public static func secret(_ name: String, on c: PostgresConnection) throws -> SealedSecret? {
        guard let row = try c.query("SELECT encode(ciphertext, 'base64'), key_id FROM pgflow.get_secret($1)", [name]).first else {
            return nil
        }
        return SealedSecret(name: name, ciphertext: try decodeBase64(row.decode(String.self, at: 0)), keyID: try row.decode(String.self, at: 1))
    }

    /// Every sealed secret (for key rotation).
    public static func allSecrets(on c: PostgresConnection) throws -> [SealedSecret] {
        try c.query("SELECT s.name, encode(g.ciphertext, 'base64'), g.key_id FROM pgflow.secret_list s, pgflow.get_secret(s.name) g ORDER BY s.name")
            .rows.map { SealedSecret(name: try $0.decode(String.self, at: 0), ciphertext: try decodeBase64($0.decode(String.self, at: 1)),
                                     keyID: try $0.decode(String.self, at: 2)) }
    }

    /// `pgflow.delete_secret`: whether it existed.
    @discardableResult
    public static func deleteSecret(_ name: String, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT pgflow.delete_secret($1)", [name]).scalar(Bool.self)
    }

    /// `pgflow.rotate_secrets`: replaces every secret of `oldKeyID` at once; returns how many.
    @discardableResult
    public static func rotateSecrets(_ secrets: [SealedSecret], oldKeyID: String, newKeyID: String, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.rotate_secrets($1::text[], ARRAY(SELECT decode(x, 'base64') FROM unnest($2::text[]) x), $3, $4)",
                    [secrets.map(\.name), secrets.map { $0.ciphertext.base64EncodedString() }, oldKeyID, newKeyID]).scalar(Int.self)
    }

    /// `pgflow.set_deployment_secret_env`: `envJSON` maps variable names to `{"secret": NAME}`.
    @discardableResult
    public static func setDeploymentSecretEnvironment(_ deployment: String, envJSON: String, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.set_deployment_secret_env($1, $2::jsonb)", [deployment, PostgresRawJSON(envJSON)]).scalar(Int.self)
    }

    /// A deployment's secret environment: variable name → secret name and its sealed value (nil when unset).
    public static func deploymentSecretEnvironment(_ deploymentID: UUID, on c: PostgresConnection) throws
        -> [(variable: String, secret: String, sealed: SealedSecret?)] {
        try c.query("""
            SELECT env_name, secret_name, encode(ciphertext, 'base64'), key_id FROM pgflow.deployment_secret_env_list
             WHERE deployment_id = $1 ORDER BY env_name
            """, [deploymentID]).rows.map { row in try secretEnvironmentEntry(row, from: 0) }
    }

    /// The secret environments of several deployments in one query, by deployment id; a deployment
    /// without one is absent. The agent asks once per claimed batch of command runs.
    public static func deploymentSecretEnvironments(_ deploymentIDs: [UUID], on c: PostgresConnection) throws
        -> [UUID: [(variable: String, secret: String, sealed: SealedSecret?)]] {
        var byDeployment: [UUID: [(variable: String, secret: String, sealed: SealedSecret?)]] = [:]
        for row in try c.query("""
            SELECT deployment_id, env_name, secret_name, encode(ciphertext, 'base64'), key_id FROM pgflow.deployment_secret_env_list
             WHERE deployment_id = ANY($1::uuid[]) ORDER BY deployment_id, env_name
            """, [deploymentIDs.map { $0.uuidString }]).rows {
            byDeployment[try row.decode(UUID.self, at: 0), default: []].append(try secretEnvironmentEntry(row, from: 1))
        }
        return byDeployment
    }

    /// Decodes env_name, secret_name, base64 ciphertext and key_id starting at column `first`.
    private static func secretEnvironmentEntry(_ row: PostgresRow, from first: Int) throws
        -> (variable: String, secret: String, sealed: SealedSecret?) {
        let secret = try row.decode(String.self, at: first + 1)
        let sealed: SealedSecret? = if let text = try row.decode(String?.self, at: first + 2), let keyID = try row.decode(String?.self, at: first + 3) {
            SealedSecret(name: secret, ciphertext: try decodeBase64(text), keyID: keyID)
        } else { nil }
        return (try row.decode(String.self, at: first), secret, sealed)
    }

    private static func decodeBase64(_ text: String) throws -> Data {
        // PostgreSQL's base64 breaks lines every 76 characters
        guard let data = Data(base64Encoded: text.replacingOccurrences(of: "\n", with: "")) else {
            throw PostgresError(kind: .decoding, message: "bad base64 from encode(…, 'base64')")
        }
        return data
    }
}

extension PGFlowListing {
    /// Secret names and key ids (`pgflow.secret_list`; never values or ciphertext).
    public static func secrets(json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT name, key_id, created_at, updated_at FROM pgflow.secret_list ORDER BY name", [], json: json, on: c)
    }
}
