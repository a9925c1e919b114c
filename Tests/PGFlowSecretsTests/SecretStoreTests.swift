// Secrets against a real database: sealed in the client, unreadable with another key, absent in
// plaintext from pg_dump, rotated all at once, resolved into a deployment's environment, redacted.
import Foundation
import PGFlowClient
import PGFlowPostgres
import PGFlowSecrets
import PGFlowTestSupport
import Testing

@Suite struct SecretStoreTests {
    @Test func aSecretSetWithOneKeyIsUnreadableWithAnotherAndNeverInPlaintextInTheDatabase() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let key = SecretKey.generate(), other = SecretKey.generate()
            let plaintext = "pl41ntext-\(UUID().uuidString)"
            try SecretStore(key: key).set("api-key", value: plaintext, on: c)
            #expect(try SecretStore(key: key).get("api-key", on: c) == plaintext)
            #expect(throws: SecretError.wrongKey(name: "api-key", storedKeyID: key.id, keyID: other.id)) {
                try SecretStore(key: other).get("api-key", on: c)
            }
            #expect(throws: SecretError.notFound("nope")) { try SecretStore(key: key).get("nope", on: c) }
            #expect(try c.query("SELECT key_id FROM pgflow.secret_list WHERE name = 'api-key'").scalar(String.self) == key.id)

            let dump = try await TestDatabase.offPool { try pgDump(db.conninfo) }
            #expect(dump.contains("api-key"))  // the row is in the dump…
            #expect(!dump.contains(plaintext))  // …its value is not, in any encoding PostgreSQL could print
            #expect(!dump.contains(Data(plaintext.utf8).base64EncodedString()))
            #expect(!dump.contains(Data(plaintext.utf8).map { String(format: "%02x", $0) }.joined()))
            #expect(!dump.contains(key.base64))
        }
    }

    @Test func rotationReEncryptsEverySecretWithTheNewKey() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let old = SecretKey.generate(), new = SecretKey.generate()
            for (name, value) in [("a", "alpha-value"), ("b", "beta-value")] { try SecretStore(key: old).set(name, value: value, on: c) }
            #expect(try SecretStore(key: old).rotate(to: new, on: c) == 2)
            #expect(try SecretStore(key: new).get("a", on: c) == "alpha-value")
            #expect(try SecretStore(key: new).get("b", on: c) == "beta-value")
            #expect(throws: SecretError.self) { try SecretStore(key: old).get("a", on: c) }
            // a secret of a third key stops a rotation before anything changes
            try SecretStore(key: SecretKey.generate()).set("c", value: "gamma-value", on: c)
            #expect(throws: SecretError.self) { try SecretStore(key: new).rotate(to: old, on: c) }
            #expect(try SecretStore(key: new).get("a", on: c) == "alpha-value")
        }
    }

    @Test func aDeploymentsSecretEnvironmentResolvesAndItsValuesAreRedacted() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let key = SecretKey.generate()
            let deploymentID = try c.query("SELECT pgflow.create_deployment('etl', 'daily', './etl.sh')").scalar(UUID.self)
            try SecretStore(key: key).set("api-key", value: "k-123456", on: c)
            try SecretStore(key: key).set("db-password", value: "hunter2-long", on: c)
            #expect(try PGFlowClient.setDeploymentSecretEnvironment("etl/daily", envJSON: """
                {"API_KEY": {"secret": "api-key"}, "DB_PASSWORD": {"secret": "db-password"}}
                """, on: c) == 2)
            let environment = try SecretEnvironment.resolveEnvironment(deploymentID: deploymentID, key: key, on: c)
            #expect(environment == ["API_KEY": "k-123456", "DB_PASSWORD": "hunter2-long"])
            #expect(throws: SecretError.self) {
                try SecretEnvironment.resolveEnvironment(deploymentID: deploymentID, key: SecretKey.generate(), on: c)
            }
            try PGFlowClient.setDeploymentSecretEnvironment("etl/daily", envJSON: #"{"TOKEN": {"secret": "not-set"}}"#, on: c)
            #expect(throws: SecretError.notFound("not-set")) {
                try SecretEnvironment.resolveEnvironment(deploymentID: deploymentID, key: key, on: c)
            }

            let redactor = SecretRedactor(environment: environment)
            #expect(redactor.redact("connecting with hunter2-long and k-123456 twice: k-123456") == "connecting with *** and *** twice: ***")
            #expect(redactor.redact("nothing secret here") == "nothing secret here")
            #expect(SecretRedactor(values: ["ab"]).isEmpty)
        }
    }
}

/// `pg_dump` of a database (schema and data) as text.
private func pgDump(_ conninfo: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["pg_dump", "--no-owner", "--dbname=\(conninfo)"]
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-dump-\(UUID().uuidString).sql")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: out) }
    let handle = try FileHandle(forWritingTo: out)
    process.standardOutput = handle
    try process.run()
    process.waitUntilExit()
    try handle.close()
    guard process.terminationStatus == 0 else { throw PostgresError(kind: .usage, message: "pg_dump exited \(process.terminationStatus)") }
    return try String(contentsOf: out, encoding: .utf8)
}
