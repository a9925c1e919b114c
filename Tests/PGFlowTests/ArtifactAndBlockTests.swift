// Artifacts from the SDK (listed by run and by key, with versions), variables, blocks with secret
// fields, and the SHA-256 of cache keys (swift-crypto, same hex as before).
import Foundation
@testable import PGFlow
import PGFlowClient
import PGFlowPostgres
import PGFlowSecrets
import PGFlowTestSupport
import Testing

private struct Row: Codable, Sendable {
    var city: String
    var n: Int
}

@Suite struct ArtifactAndBlockTests {
    @Test func artifactsFromTheSDKAreListedByRunAndByKeyWithVersions() async throws {
        try await withSDK { (t) async throws in
            let measure = FlowTask("measure") { (n: Int) -> Int in
                let progress = try await createProgressArtifact(0, description: "rows loaded")
                try await progress.update(100)
                return n
            }
            let flow = Flow("reporting") { (n: Int) -> Int in
                try await createMarkdownArtifact("# Run \(n)", key: "daily-report", description: "summary")
                try await createTableArtifact([Row(city: "Oslo", n: n)], key: "daily-table")
                try await createLinkArtifact("https://example.com/\(n)", text: "details")
                return try await measure(n)
            }
            let first = try await flow.run(1), second = try await flow.run(2)
            #expect(first.stateName == "Completed" && second.stateName == "Completed")
            #expect(try await t.rows(
                """
                SELECT type, key, version::text, data::text, (task_run_id IS NOT NULL)::text FROM pgflow.artifact_list
                 WHERE flow_run_id = $1 ORDER BY type
                """, [first.flowRunID]) == [
                    ["link", nil, nil, #"{"url": "https://example.com/1", "text": "details"}"#, "false"],
                    ["markdown", "daily-report", "1", ##""# Run 1""##, "false"],
                    ["progress", nil, nil, "100", "true"],
                    ["table", "daily-table", "1", #"[{"n": 1, "city": "Oslo"}]"#, "false"],
                ])
            #expect(try await t.rows(
                "SELECT version::text, data::text, latest::text, flow_run_id::text FROM pgflow.artifact_list WHERE key = 'daily-report' ORDER BY version"
            ) == [
                ["1", ##""# Run 1""##, "false", first.flowRunID.uuidString.lowercased()],
                ["2", ##""# Run 2""##, "true", second.flowRunID.uuidString.lowercased()],
            ])
        }
    }

    @Test func variablesAreSetReadAndUnsetFromTheSDK() async throws {
        try await withSDK { (_) async throws in
            try await Variable.set("threshold", 5)
            try await Variable.set("owners", ["ana", "bo"])
            #expect(try await Variable.get("threshold", as: Int.self) == 5)
            #expect(try await Variable.get("owners", as: [String].self) == ["ana", "bo"])
            #expect(try await Variable.get("missing", as: Int.self) == nil)
            #expect(try await Variable.unset("threshold"))
            #expect(try await Variable.get("threshold", as: Int.self) == nil)
        }
    }

    @Test func aBlockLoadsWithItsSecretFieldsOpenedAndAWrongFieldIsRefused() async throws {
        try await withSDK { (t) async throws in
            let key = SecretKey.generate()
            try await t.engine.pool.withConnection { try SecretStore(key: key).set("db-password", value: "correct horse", on: $0) }
            let bad = DatabaseCredentialsBlock(driver: "oracle", host: "db", port: 5432, database: "app", username: "etl",
                                               password: nil, sslmode: nil)
            let error = await #expect(throws: PostgresError.self) { try await Block.save("database-credentials/main", bad) }
            #expect(error?.sqlState == "22023")
            #expect(error?.message.contains(#"$.driver: "oracle" is not one of ["postgresql", "mysql", "sqlite"]"#) == true)
            try await t.engine.pool.withConnection { c in
                try PGFlowClient.saveBlock("database-credentials/main", dataJSON: """
                    {"driver": "postgresql", "host": "db", "port": 5432, "database": "app", "username": "etl", "password": {"secret": "db-password"}}
                    """, on: c)
            }
            let loaded = try await Block.load("database-credentials/main", as: DatabaseCredentialsBlock.self, key: key)
            #expect(loaded == DatabaseCredentialsBlock(driver: "postgresql", host: "db", port: 5432, database: "app", username: "etl",
                                                       password: "correct horse", sslmode: nil))
            await #expect(throws: SecretError.self) {
                try await Block.load("database-credentials/main", as: DatabaseCredentialsBlock.self, key: SecretKey.generate())
            }
        }
    }

    @Test func cacheKeyDigestsAreStandardSHA256() {
        // FIPS 180-4 known answers: the hand-written digest this replaced gave the same lower-case hex
        #expect(PGFlow.SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(PGFlow.SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(PGFlow.SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}
