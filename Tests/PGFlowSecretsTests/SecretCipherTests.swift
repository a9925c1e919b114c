import Foundation
import PGFlowSecrets
import Testing

@Suite struct SecretCipherTests {
    @Test func sealsAndOpensUnderTheSameKeyOnly() throws {
        let key = SecretKey.generate(), other = SecretKey.generate()
        let sealed = try SecretCipher.seal("hunter2", name: "db-password", key: key)
        #expect(!String(decoding: sealed, as: UTF8.self).contains("hunter2"))
        #expect(try SecretCipher.open(sealed, name: "db-password", storedKeyID: key.id, key: key) == "hunter2")
        #expect(throws: SecretError.wrongKey(name: "db-password", storedKeyID: key.id, keyID: other.id)) {
            try SecretCipher.open(sealed, name: "db-password", storedKeyID: key.id, key: other)
        }
        // the name is authenticated: the same ciphertext under another name does not open
        #expect(throws: SecretError.corrupted("api-key")) {
            try SecretCipher.open(sealed, name: "api-key", storedKeyID: key.id, key: key)
        }
    }

    @Test func keysComeFromBase64OrAFileAndNeverShowTheirBytes() throws {
        let key = SecretKey.generate()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-key-\(UUID().uuidString)")
        try (key.base64 + "\n").write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try SecretKey.fromEnvironment(["PGFLOW_SECRET_KEY_FILE": file.path]).id == key.id)
        #expect(try SecretKey.fromEnvironment(["PGFLOW_SECRET_KEY": key.base64]).id == key.id)
        #expect(!"\(key)".contains(key.base64))
        #expect(throws: SecretError.noKey) { try SecretKey.fromEnvironment([:]) }
        #expect(throws: SecretError.self) { try SecretKey(base64: Data(repeating: 1, count: 16).base64EncodedString()) }
    }

    @Test func theKeyIDIsAStableFingerprint() throws {
        // HMAC-SHA256(key = 32 zero bytes, "pgflow secret key id v1"), first 8 bytes
        let zero = try SecretKey(bytes: Data(repeating: 0, count: 32))
        #expect(zero.id.count == 16)
        #expect(zero.id == (try SecretKey(bytes: Data(repeating: 0, count: 32))).id)
        #expect(zero.id != SecretKey.generate().id)
    }
}
