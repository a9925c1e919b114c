import Foundation
import PGFlowClient
import PGFlowPostgres

/// Secrets in a pgflow database, sealed and opened here with `key`: PostgreSQL receives names and
/// ciphertext only.
public struct SecretStore: Sendable {
    /// The key that seals new secrets and opens stored ones.
    public let key: SecretKey

    /// A store using `key`.
    public init(key: SecretKey) { self.key = key }

    /// Seals `value` and stores it under `name` (replacing an earlier value).
    public func set(_ name: String, value: String, on c: PostgresConnection) throws {
        try PGFlowClient.setSecret(SealedSecret(name: name, ciphertext: try SecretCipher.seal(value, name: name, key: key), keyID: key.id), on: c)
    }

    /// The plaintext of `name`; `SecretError.notFound` or `.wrongKey` otherwise.
    public func get(_ name: String, on c: PostgresConnection) throws -> String {
        guard let sealed = try PGFlowClient.secret(name, on: c) else { throw SecretError.notFound(name) }
        return try open(sealed)
    }

    /// Opens a sealed secret.
    public func open(_ sealed: SealedSecret) throws -> String {
        try SecretCipher.open(sealed.ciphertext, name: sealed.name, storedKeyID: sealed.keyID, key: key)
    }

    /// Re-seals every secret of this store's key with `newKey`, all at once; returns how many. Refused
    /// (nothing changed) when a secret is sealed with a third key, which neither key can open.
    @discardableResult
    public func rotate(to newKey: SecretKey, on c: PostgresConnection) throws -> Int {
        let all = try PGFlowClient.allSecrets(on: c)
        let foreign = all.filter { $0.keyID != key.id && $0.keyID != newKey.id }.map(\.name)
        guard foreign.isEmpty else {
            throw SecretError.invalid("secrets \(foreign.joined(separator: ", ")) are sealed with neither the old key (\(key.id)) nor the new one (\(newKey.id)): nothing was rotated")
        }
        let resealed = try all.filter { $0.keyID == key.id }.map { sealed in
            SealedSecret(name: sealed.name, ciphertext: try SecretCipher.seal(try open(sealed), name: sealed.name, key: newKey), keyID: newKey.id)
        }
        return try PGFlowClient.rotateSecrets(resealed, oldKeyID: key.id, newKeyID: newKey.id, on: c)
    }
}
