import Crypto

/// SHA-256 hex digests for stable cache keys (swift-crypto's implementation).
enum SHA256 {
    /// The digest of a string's UTF-8 bytes, as 64 lower-case hex digits.
    static func hex(_ text: String) -> String {
        Crypto.SHA256.hash(data: Array(text.utf8)).map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }
}
