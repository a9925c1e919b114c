// WebhookPoster: one POST per notification through libcurl (Debian's libcurl, a C shim in CPGFlowHTTP),
// so the scheduler needs no NIO: http:// and https:// targets, the certificate checked against the
// system's authorities or a PEM bundle of your own (`--notify-ca-file`), redirects not followed, no
// other protocols. It signs the body with HMAC-SHA256 (header `X-PGFlow-Signature: sha256=<hex>`) and
// reads only the status code.
import CPGFlowHTTP
import Crypto
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A webhook POST's outcome: the HTTP status, or why there was none.
public enum WebhookResponse: Sendable, Equatable {
    /// The receiver answered with this status code.
    case status(Int)
    /// No answer: connection refused, timeout, bad URL, …
    case failure(String)

    /// Whether the delivery counts as done (a 2xx status).
    public var delivered: Bool { if case .status(let s) = self { return (200..<300).contains(s) } else { return false } }

    /// A short description for the delivery's last error.
    public var description: String {
        switch self {
        case .status(let s): return "HTTP \(s)"
        case .failure(let why): return why
        }
    }
}

/// Sends webhook POSTs.
public enum WebhookPoster {
    /// The signature header's value for `body` under `key`: `sha256=` and 64 hex digits.
    public static func signature(body: String, key: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: SymmetricKey(data: Data(key.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// POSTs `body` (JSON) to `url` with the given extra headers, on a thread of its own (the blocking
    /// request never runs on Swift's cooperative pool); gives up after `timeout` seconds to connect and
    /// 3 × `timeout` in all. `caFile` (PEM) replaces the system's certificate authorities for https.
    public static func post(url: String, body: String, headers: [(String, String)], timeout: Double = 10,
                            caFile: String? = nil) async -> WebhookResponse {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: postBlocking(url: url, body: body, headers: headers, timeout: timeout, caFile: caFile))
            }
        }
    }

    /// Why a URL is refused before any request (nil when it may be posted to).
    static func refusal(_ url: String) -> String? {
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else { return "not an http:// or https:// URL: \(url.prefix(200))" }
        guard !url.contains(where: { $0 == "\r" || $0 == "\n" || $0 == " " || $0 == "\0" }) else { return "bad characters in \(url.prefix(200))" }
        return nil
    }

    static func postBlocking(url: String, body: String, headers: [(String, String)], timeout: Double, caFile: String?) -> WebhookResponse {
        if let why = refusal(url) { return .failure(why) }
        let lines = headers.filter { !$0.0.contains(where: \.isNewline) && !$0.1.contains(where: \.isNewline) }.map { "\($0.0): \($0.1)" }
        var status = 0
        var error = [CChar](repeating: 0, count: 512)
        let bytes = Array(body.utf8)
        let rc = withCStrings(lines) { headerPointers in
            bytes.withUnsafeBufferPointer { bodyBuffer in
                bodyBuffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(bytes.count, 1)) { bodyPointer in
                    pgflow_http_post(url, bodyPointer, bytes.count, headerPointers, Int32(lines.count), timeout, timeout * 3, caFile,
                                     &status, &error, error.count)
                }
            }
        }
        guard rc == 0 else { return .failure(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        return .status(status)
    }

    /// Calls `body` with C strings of `strings` (valid during the call only).
    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
