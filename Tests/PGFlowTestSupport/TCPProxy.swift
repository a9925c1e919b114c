// Test support: a TCP proxy on 127.0.0.1 that a test can cut (every connection closed, new ones refused)
// and restore, to take a process off the database without touching the database, or point at another
// server (a failover: the new primary behind the same address).
import Foundation
import Synchronization

/// Forwards 127.0.0.1:`port` to 127.0.0.1:`upstreamPort`, one thread pair per connection.
public final class TCPProxy: @unchecked Sendable {
    /// The port it listens on.
    public let port: Int
    private let listener: Int32
    private let state: Mutex<(cut: Bool, sockets: Set<Int32>, closed: Bool, loseReply: Bool, loseReplyWith: [UInt8]?, upstreamPort: Int)>

    /// Starts listening on a free port.
    public init(upstreamPort: Int) throws {
        state = Mutex((false, [], false, false, nil, upstreamPort))
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw ProxyError(message: "cannot listen: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        self.listener = listener
        Thread { [self] in acceptLoop() }.start()
    }

    deinit { close() }

    /// Closes every connection and refuses new ones until `restore()`.
    public func cut() {
        // Under the lock: a descriptor is closed only after it left `sockets`, under the lock too.
        state.withLock { s in
            s.cut = true
            for fd in s.sockets { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// The next bytes the server sends (on any connection) are thrown away and that connection is
    /// closed: the server did the work, the client never hears of it (a commit whose reply was lost).
    public func loseNextReply() { state.withLock { $0.loseReply = true } }

    /// Like `loseNextReply`, for the next server bytes (on any connection) that contain `text`: with
    /// "COMMIT", the reply to the next explicit transaction's COMMIT (its CommandComplete tag).
    public func loseNextReply(containing text: String) { state.withLock { $0.loseReplyWith = Array(text.utf8) + [0] } }

    /// Lets connections through again.
    public func restore() { state.withLock { $0.cut = false } }

    /// Sends new connections to 127.0.0.1:`port` from now on (a failover: the same address, another
    /// server). Open connections stay where they are; they end when their server goes away.
    public func retarget(upstreamPort port: Int) { state.withLock { $0.upstreamPort = port } }

    /// Where new connections go.
    public var upstreamPort: Int { state.withLock { $0.upstreamPort } }

    /// Stops listening and closes everything.
    public func close() {
        let first = state.withLock { s -> Bool in
            defer { s.closed = true }
            return !s.closed
        }
        guard first else { return }
        cut()
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            guard let upstreamPort = state.withLock({ s in s.cut || s.closed ? nil : s.upstreamPort }) else {
                Glibc.close(client)
                continue
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected != 0 {
                Glibc.close(client)
                Glibc.close(upstream)
                continue
            }
            state.withLock { $0.sockets.formUnion([client, upstream]) }
            let pair = Pair()
            Thread { [self] in pump(from: client, to: upstream, pair, replies: false) }.start()
            Thread { [self] in pump(from: upstream, to: client, pair, replies: true) }.start()
        }
    }

    private static func contains(_ bytes: ArraySlice<UInt8>, _ pattern: [UInt8]) -> Bool {
        guard bytes.count >= pattern.count else { return false }
        var i = bytes.startIndex
        while i <= bytes.endIndex - pattern.count {
            if bytes[i] == pattern[0] && bytes[i..<(i + pattern.count)].elementsEqual(pattern) { return true }
            i += 1
        }
        return false
    }

    /// The two pumps of one connection; the second to end closes both descriptors.
    private final class Pair: @unchecked Sendable { var ended = 0 }

    private func pump(from source: Int32, to target: Int32, _ pair: Pair, replies: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || state.withLock({ $0.cut }) { break }
            if replies && state.withLock({ s in defer { s.loseReply = false }; return s.loseReply }) { break }
            if replies && state.withLock({ s -> Bool in
                guard let pattern = s.loseReplyWith, Self.contains(buffer[..<n], pattern) else { return false }
                s.loseReplyWith = nil
                return true
            }) { break }
            var sent = 0
            while sent < n {
                // send, not write: a peer that already closed must give EPIPE, not SIGPIPE (which
                // would kill the whole test process)
                let w = buffer.withUnsafeBytes { send(target, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if w <= 0 { break }
                sent += w
            }
            if sent < n { break }
        }
        // Either side gone: end both directions (the other pump then ends too).
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(target, Int32(SHUT_RDWR))
        let last = state.withLock { s -> Bool in
            pair.ended += 1
            guard pair.ended == 2 else { return false }
            s.sockets.remove(source)
            s.sockets.remove(target)
            return true
        }
        if last {
            Glibc.close(source)
            Glibc.close(target)
        }
    }
}

/// Why the proxy could not start.
public struct ProxyError: Error, CustomStringConvertible {
    /// The reason.
    public let message: String
    /// The reason.
    public var description: String { message }
}
