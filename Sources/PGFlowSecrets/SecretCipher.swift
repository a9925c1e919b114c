import Crypto
import Foundation

/// AES-256-GCM sealing of one secret value. The secret's name is the associated data, so a ciphertext
/// copied onto another name does not open.
public enum SecretCipher {
    /// nonce ‖ ciphertext ‖ tag.
    public static func seal(_ plaintext: String, name: String, key: SecretKey) throws -> Data {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: key.symmetric, authenticating: associatedData(name))
        guard let combined = box.combined else { throw SecretError.invalid("AES-GCM gave no combined ciphertext") }
        return combined
    }

    /// Opens what `seal` produced; `storedKeyID` is checked first so a wrong key is a clear error.
    public static func open(_ sealed: Data, name: String, storedKeyID: String, key: SecretKey) throws -> String {
        guard storedKeyID == key.id else { throw SecretError.wrongKey(name: name, storedKeyID: storedKeyID, keyID: key.id) }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            let plain = try AES.GCM.open(box, using: key.symmetric, authenticating: associatedData(name))
            return String(decoding: plain, as: UTF8.self)
        } catch {
            throw SecretError.corrupted(name)
        }
    }

    private static func associatedData(_ name: String) -> Data { Data("pgflow-secret:\(name)".utf8) }
}
