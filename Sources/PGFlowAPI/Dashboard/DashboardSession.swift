// Dashboard sessions without server state: logging in with an API token sets a cookie that holds the
// token sealed with AES-GCM under the process's session key (authenticated, so it cannot be forged or
// altered, and encrypted, so the token cannot be read from it) and an expiry. Every request still
// checks the token in the database, so revoking it ends its sessions at once. Replicas that share
// PGFLOW_API_SESSION_KEY accept each other's cookies; without it each process picks a random key (and
// sessions end when it restarts). The CSRF token of a session is an HMAC of its cookie under the same key.
import Crypto
import Foundation

/// Seals and opens session cookies; derives CSRF tokens.
struct DashboardSession: @unchecked Sendable {
    /// The cookie's name.
    static let cookieName = "pgflow_session"
    /// How long a session lasts.
    static let lifetime: TimeInterval = 12 * 3600

    private let key: SymmetricKey

    /// A key from a secret (any text: its SHA-256 is the key), or a random one.
    init(secret: String?) {
        if let secret, !secret.isEmpty {
            key = SymmetricKey(data: SHA256.hash(data: Data(secret.utf8)))
        } else {
            key = SymmetricKey(size: .bits256)
        }
    }

    /// The cookie value carrying `token` until `now + lifetime`.
    func seal(token: String, now: Date = Date()) throws -> String {
        let expiry = Int(now.timeIntervalSince1970 + Self.lifetime)
        let box = try AES.GCM.seal(Data("\(expiry)\n\(token)".utf8), using: key)
        guard let combined = box.combined else { throw APIProblem(.internalServerError, "cannot seal a session") }
        return Self.base64url(combined)
    }

    /// The token in a cookie value, or nil when it was forged, altered or has expired.
    func open(_ value: String, now: Date = Date()) -> String? {
        guard let data = Self.unbase64url(value), let box = try? AES.GCM.SealedBox(combined: data),
              let plain = try? AES.GCM.open(box, using: key) else { return nil }
        let text = String(decoding: plain, as: UTF8.self)
        guard let newline = text.firstIndex(of: "\n"), let expiry = Int(text[..<newline]),
              Double(expiry) > now.timeIntervalSince1970 else { return nil }
        return String(text[text.index(after: newline)...])
    }

    /// The CSRF token of a session (its cookie value; "" for a process without auth).
    func csrfToken(session: String) -> String {
        Self.base64url(Data(HMAC<SHA256>.authenticationCode(for: Data("csrf:\(session)".utf8), using: key)))
    }

    /// Whether `presented` is the CSRF token of `session` (compared in constant time).
    func checkCSRF(_ presented: String, session: String) -> Bool {
        guard let mac = Self.unbase64url(presented) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data("csrf:\(session)".utf8), using: key)
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: String) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }

    /// A cookie of a request, by name.
    static func cookie(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ";") {
            let pair = part.trimmingCharacters(in: .whitespaces)
            if pair.hasPrefix(name + "=") { return String(pair.dropFirst(name.count + 1)) }
        }
        return nil
    }
}
