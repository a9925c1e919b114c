// PGFlowSecrets: secrets encrypted in the client. A secret's value is sealed with AES-GCM under a
// 32-byte key that lives outside the database (PGFLOW_SECRET_KEY, base64, or PGFLOW_SECRET_KEY_FILE);
// PostgreSQL stores only the name, the ciphertext and the key's id (an HMAC-derived fingerprint), so a
// wrong key is detected before any decryption and the key itself is never sent, stored or logged.
//
//   let key = try SecretKey.fromEnvironment()
//   try SecretStore(key: key).set("api-key", value: "s3cr3t", on: connection)
import Crypto
import Foundation

/// A 32-byte AES-256 key for secrets. Its description never shows the key bytes.
public struct SecretKey: Sendable, Equatable, CustomStringConvertible {
    /// The key's 32 bytes.
    private let bytes: Data
    /// The key for AES-GCM and HMAC.
    var symmetric: SymmetricKey { SymmetricKey(data: bytes) }
    /// The key's id: 16 hex digits of HMAC-SHA256(key, "pgflow secret key id v1"); stored beside each secret.
    public let id: String

    /// The environment variable holding a base64 key.
    public static let environmentVariable = "PGFLOW_SECRET_KEY"
    /// The environment variable naming a file that holds a base64 key.
    public static let fileEnvironmentVariable = "PGFLOW_SECRET_KEY_FILE"

    /// A key from its 32 raw bytes.
    public init(bytes: some ContiguousBytes) throws {
        let count = bytes.withUnsafeBytes { $0.count }
        guard count == 32 else { throw SecretError.badKey("a secret key has 32 bytes, this one has \(count)") }
        self.bytes = bytes.withUnsafeBytes { Data($0) }
        let mac = HMAC<Crypto.SHA256>.authenticationCode(for: Data("pgflow secret key id v1".utf8), using: SymmetricKey(data: self.bytes))
        id = mac.prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// A key from base64 text (surrounding whitespace ignored).
    public init(base64 text: String) throws {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SecretError.badKey("the secret key is not base64: generate one with `openssl rand -base64 32`")
        }
        try self.init(bytes: data)
    }

    /// A key from a file holding base64 text.
    public init(file path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SecretError.badKey("cannot read the secret key file \(path)")
        }
        do { try self.init(base64: text) } catch SecretError.badKey(let why) { throw SecretError.badKey("\(path): \(why)") }
    }

    /// A new random key.
    public static func generate() -> SecretKey {
        // 32 random bytes always make a valid key
        try! SecretKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    /// The key from `PGFLOW_SECRET_KEY` (base64), else the file `PGFLOW_SECRET_KEY_FILE` names.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SecretKey {
        if let text = environment[environmentVariable], !text.isEmpty { return try SecretKey(base64: text) }
        if let path = environment[fileEnvironmentVariable], !path.isEmpty { return try SecretKey(file: path) }
        throw SecretError.noKey
    }

    /// The key as base64 (to write a key file; never log it).
    public var base64: String { bytes.base64EncodedString() }

    /// Shows the id only.
    public var description: String { "SecretKey(id: \(id))" }
}
