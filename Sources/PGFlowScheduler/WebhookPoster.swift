// WebhookPoster: one HTTP/1.1 POST over a plain TCP socket, so the scheduler needs neither NIO nor
// URLSession. It signs the body with HMAC-SHA256 (header `X-PGFlow-Signature: sha256=<hex>`), sends
// `Connection: close`, and reads only the status line. http:// only: an https:// target fails with a
// message that says so (put an http relay in front, or see docs/events.md).
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

    /// POSTs `body` (JSON) to `url` with the given extra headers, on a thread of its own (blocking
    /// socket calls never run on Swift's cooperative pool); gives up after `timeout` seconds per step.
    public static func post(url: String, body: String, headers: [(String, String)], timeout: Double = 10) async -> WebhookResponse {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: postBlocking(url: url, body: body, headers: headers, timeout: timeout))
            }
        }
    }

    /// The parts of an http:// URL.
    struct Target: Equatable {
        var host: String, port: UInt16, path: String
    }

    /// Why a URL cannot be posted to.
    struct BadURL: Error, Equatable {
        var message: String
    }

    /// Parses `http://host[:port][/path]` (IPv6 hosts in brackets).
    static func parse(_ url: String) -> Result<Target, BadURL> {
        if url.lowercased().hasPrefix("https://") {
            return .failure(BadURL(message: "https:// targets are not supported by pgflow-scheduler's built-in sender (plain HTTP only): point the target at an http:// relay"))
        }
        guard url.lowercased().hasPrefix("http://") else { return .failure(BadURL(message: "not an http:// URL: \(url)")) }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var host = authority, port: UInt16 = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return .failure(BadURL(message: "bad IPv6 host in \(url)")) }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = UInt16(after.dropFirst()) else { return .failure(BadURL(message: "bad port in \(url)")) }; port = p }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = UInt16(authority[authority.index(after: colon)...]) else { return .failure(BadURL(message: "bad port in \(url)")) }
            port = p
        }
        guard !host.isEmpty, !host.contains("@") else { return .failure(BadURL(message: "bad host in \(url)")) }
        guard !path.contains(where: { $0 == "\r" || $0 == "\n" || $0 == " " }) else { return .failure(BadURL(message: "bad path in \(url)")) }
        return .success(Target(host: host, port: port, path: path))
    }

    static func postBlocking(url: String, body: String, headers: [(String, String)], timeout: Double) -> WebhookResponse {
        let target: Target
        switch parse(url) {
        case .success(let t): target = t
        case .failure(let why): return .failure(why.message)
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(target.host, String(target.port), &hints, &list)
        guard rc == 0, let first = list else { return .failure("cannot resolve \(target.host): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(list) }
        var fd: Int32 = -1
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        while let a = ai {
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if s >= 0 {
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                if connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { fd = s; break }
                lastError = "cannot connect to \(target.host):\(target.port): \(String(cString: strerror(errno)))"
                close(s)
            }
            ai = a.pointee.ai_next
        }
        guard fd >= 0 else { return .failure(lastError) }
        defer { close(fd) }
        let hostHeader = target.host.contains(":") ? "[\(target.host)]:\(target.port)" : "\(target.host):\(target.port)"
        var head = "POST \(target.path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: pgflow-scheduler\r\n"
        head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n"
        for (name, value) in headers where !name.contains(where: \.isNewline) && !value.contains(where: \.isNewline) {
            head += "\(name): \(value)\r\n"
        }
        head += "\r\n"
        let request = Array(head.utf8) + Array(body.utf8)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure("cannot send to \(target.host):\(target.port): \(String(cString: strerror(errno)))")
            }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !response.contains(UInt8(ascii: "\n")) && response.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                return .failure(n == 0 ? "the receiver closed the connection without an answer"
                                       : "no answer from \(target.host):\(target.port): \(String(cString: strerror(errno)))")
            }
            response += buffer[0..<n]
        }
        let line = String(decoding: response.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
            return .failure("not an HTTP answer: \(line.prefix(100))")
        }
        return .status(code)
    }
}
