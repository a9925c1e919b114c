import Foundation
import PGFlowClient
import PGFlowPostgres

/// A deployment's secret environment (`env: {API_KEY: {secret: api-key}}` in pgflow.yaml), decrypted
/// for the command the agent is about to start.
public enum SecretEnvironment {
    /// The variables of the deployment's secret environment with their plaintext values. Throws
    /// `SecretError.notFound` for a mapped secret that is not set and `.wrongKey` when `key` is not the
    /// one the secrets were sealed with (no variable is returned then: a command never starts half-configured).
    public static func resolveEnvironment(deploymentID: UUID, key: SecretKey, on c: PostgresConnection) throws -> [String: String] {
        try resolve(try PGFlowClient.deploymentSecretEnvironment(deploymentID, on: c), key: key)
    }

    /// The plaintext variables of fetched entries (`PGFlowClient.deploymentSecretEnvironment(s)`);
    /// throws as `resolveEnvironment` does, and `SecretError.noKey` when there are entries but no key.
    public static func resolve(_ entries: [(variable: String, secret: String, sealed: SealedSecret?)], key: SecretKey?) throws -> [String: String] {
        if entries.isEmpty { return [:] }
        guard let key else { throw SecretError.noKey }
        let store = SecretStore(key: key)
        var environment: [String: String] = [:]
        for entry in entries {
            guard let sealed = entry.sealed else { throw SecretError.notFound(entry.secret) }
            environment[entry.variable] = try store.open(sealed)
        }
        return environment
    }
}

/// Replaces secret values in text (log lines of a command that was given secrets) with `***`.
public struct SecretRedactor: Sendable {
    /// The values to hide, longest first (so a value containing another is hidden whole).
    private let values: [String]
    /// What replaces each value.
    public static let mask = "***"

    /// A redactor for `values`. Values shorter than 4 characters are not redacted: masking every "a"
    /// or "1" in the logs would hide more than it protects.
    public init(values: some Sequence<String>) {
        self.values = Set(values.filter { $0.count >= 4 }).sorted { $0.count > $1.count }
    }

    /// A redactor for the values of a resolved secret environment.
    public init(environment: [String: String]) { self.init(values: environment.values) }

    /// Whether there is anything to redact.
    public var isEmpty: Bool { values.isEmpty }

    /// `line` with every secret value replaced by `***`.
    public func redact(_ line: String) -> String {
        var text = line
        for value in values where text.contains(value) {
            text = text.replacingOccurrences(of: value, with: Self.mask)
        }
        return text
    }
}
