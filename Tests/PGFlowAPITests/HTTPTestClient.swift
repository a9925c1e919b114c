// A small blocking HTTP/1.1 client over a socket for the API tests (one request per connection). It
// runs on threads of its own (TestDatabase.offPool), never on Swift's cooperative pool.
import Foundation
import PGFlowTestSupport

/// One response.
struct HTTPReply: CustomStringConvertible {
    let status: Int
    let headers: [String: String]
    let body: String
    var description: String { "\(status) \(body.prefix(2000))" }

    /// The body as a JSON object.
    var object: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]) ?? [:] }
    /// `items` of a list response.
    var items: [[String: Any]] { (object["items"] as? [[String: Any]]) ?? [] }
}

/// Requests against one server.
struct HTTPTestClient: Sendable {
    let port: Int
    var token: String?

    /// Sends a request and reads the whole response.
    func send(_ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]) async throws -> HTTPReply {
        let request = requestText(method, path, body: body, headers: headers)
        let port = self.port
        return try await TestDatabase.offPool {
            let fd = try Self.connect(port)
            defer { close(fd) }
            try Self.write(fd, request)
            var data = Data()
            while let chunk = try Self.read(fd) { data.append(chunk) }
            return try Self.parse(data)
        }
    }

    func get(_ path: String) async throws -> HTTPReply { try await send("GET", path) }
    func post(_ path: String, _ body: String = "{}") async throws -> HTTPReply { try await send("POST", path, body: body) }
    func put(_ path: String, _ body: String) async throws -> HTTPReply { try await send("PUT", path, body: body) }

    /// Opens a Server-Sent Events stream and collects its text until `until` holds for it or `timeout` passes.
    func stream(_ path: String, timeout: Double, headers: [String: String] = [:], until: @escaping @Sendable (String) -> Bool) async throws -> String {
        let request = requestText("GET", path, body: nil, headers: headers)
        let port = self.port
        return try await TestDatabase.offPool {
            let fd = try Self.connect(port, receiveTimeout: 0.2)
            defer { close(fd) }
            try Self.write(fd, request)
            var data = Data()
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if let chunk = try Self.read(fd) { data.append(chunk) } else { break }
                if until(String(decoding: data, as: UTF8.self)) { break }
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    private func requestText(_ method: String, _ path: String, body: String?, headers: [String: String]) -> Data {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let token { text += "Authorization: Bearer \(token)\r\n" }
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        let bytes = Data((body ?? "").utf8)
        if body != nil { text += "Content-Type: application/json\r\nContent-Length: \(bytes.count)\r\n" }
        return Data((text + "\r\n").utf8) + bytes
    }

    private static func connect(_ port: Int, receiveTimeout: Double = 60) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: Int(receiveTimeout), tv_usec: Int((receiveTimeout - Double(Int(receiveTimeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { close(fd); throw HTTPTestError("cannot connect to 127.0.0.1:\(port)") }
        return fd
    }

    private static func write(_ fd: Int32, _ data: Data) throws {
        var offset = 0
        while offset < data.count {
            let n = data.withUnsafeBytes { Foundation.send(fd, $0.baseAddress! + offset, data.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }  // the server may answer (413) before reading everything
            offset += n
        }
    }

    /// A chunk; nil at the end of the stream; empty Data on a receive timeout.
    private static func read(_ fd: Int32) throws -> Data? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        if n > 0 { return Data(buffer[0..<n]) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return Data() }
        return nil
    }

    private static func parse(_ data: Data) throws -> HTTPReply {
        guard let split = data.range(of: Data("\r\n\r\n".utf8)) else { throw HTTPTestError("no HTTP response: \(String(decoding: data, as: UTF8.self))") }
        let head = String(decoding: data[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(head[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var body = Data(data[split.upperBound...])
        if headers["transfer-encoding"] == "chunked" { body = dechunk(body) }
        return HTTPReply(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }

    private static func dechunk(_ data: Data) -> Data {
        var out = Data(), rest = data[...]
        while let line = rest.range(of: Data("\r\n".utf8)) {
            let size = Int(String(decoding: rest[..<line.lowerBound], as: UTF8.self), radix: 16) ?? 0
            if size == 0 { break }
            let start = line.upperBound
            out.append(rest[start..<min(start + size, rest.endIndex)])
            rest = rest[min(start + size + 2, rest.endIndex)...]
        }
        return out
    }
}

struct HTTPTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
