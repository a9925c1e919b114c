import Foundation

/// A secrets failure, printable as one line that says what to do. Never contains a secret value or key.
public enum SecretError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Neither PGFLOW_SECRET_KEY nor PGFLOW_SECRET_KEY_FILE is set.
    case noKey
    /// The key text or file is unusable.
    case badKey(String)
    /// The secret was sealed with another key.
    case wrongKey(name: String, storedKeyID: String, keyID: String)
    /// No secret has this name.
    case notFound(String)
    /// The ciphertext does not open under the right key (tampered or bound to another name).
    case corrupted(String)
    /// A name or value the store refuses.
    case invalid(String)

    /// One line.
    public var description: String {
        switch self {
        case .noKey:
            return "no secret key: set PGFLOW_SECRET_KEY (base64 of 32 bytes, e.g. `openssl rand -base64 32`) or PGFLOW_SECRET_KEY_FILE"
        case .badKey(let why):
            return "bad secret key: \(why)"
        case let .wrongKey(name, stored, key):
            return "secret \(name) was encrypted with key \(stored), but the key given is \(key): use the key it was set with (or rotate with `pgflow secret rotate-key`)"
        case .notFound(let name):
            return "unknown secret \(name): `pgflow secret ls` lists them"
        case .corrupted(let name):
            return "secret \(name) does not decrypt although its key id matches: its ciphertext was altered; set it again"
        case .invalid(let why):
            return why
        }
    }
}
