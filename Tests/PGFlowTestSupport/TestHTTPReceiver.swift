// Test support: a tiny HTTP/1.1 server on 127.0.0.1 that records the requests it receives and
// answers each with the next status of a script (the last one repeats).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP receiver for webhook tests.
public final class TestHTTPReceiver: @unchecked Sendable {
    /// One request received.
    public struct Request: Sendable {
        /// Header names (lower case) and values.
        public var headers: [String: String]
        /// The body, as sent.
        public var body: String
        /// The status it was answered with.
        public var status: Int
    }

    /// The port it listens on.
    public private(set) var port: UInt16 = 0
    private let fd: Int32
    private let lock = NSLock()
    private var statuses: [Int]
    private var received: [Request] = []
    private var stopped = false

    /// Listens on 127.0.0.1 (a free port) and answers with `statuses` in turn, then the last one.
    public init(statuses: [Int]) throws {
        self.statuses = statuses.isEmpty ? [200] : statuses
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else { throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = UInt16(bigEndian: addr.sin_port)
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    deinit { stop() }

    /// The URL of a path on it.
    public func url(_ path: String = "/hook") -> String { "http://127.0.0.1:\(port)\(path)" }

    /// The requests so far.
    public var requests: [Request] { lock.withLock { received } }

    /// Stops listening.
    public func stop() {
        let wasStopped = lock.withLock { () -> Bool in defer { stopped = true }; return stopped }
        if !wasStopped { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { if lock.withLock({ stopped }) { return } else { continue } }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            data += buffer[0..<n]
            if headerEnd == nil, let range = findHeaderEnd(data) {
                headerEnd = range
                let head = String(decoding: data[0..<range], as: UTF8.self)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let end = headerEnd, data.count >= end + 4 + contentLength { break }
        }
        let end = headerEnd!
        var headers: [String: String] = [:]
        for line in String(decoding: data[0..<end], as: UTF8.self).split(separator: "\r\n").dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        let body = String(decoding: data[(end + 4)..<(end + 4 + contentLength)], as: UTF8.self)
        let status = lock.withLock { () -> Int in
            let s = statuses.count > 1 ? statuses.removeFirst() : statuses[0]
            received.append(Request(headers: headers, body: body, status: s))
            return s
        }
        let answer = Array("HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
        _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    private func findHeaderEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 { return i }
        return nil
    }
}
