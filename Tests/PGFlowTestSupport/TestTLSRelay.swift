// Test support: an https front for a TestHTTPReceiver. A self-signed certificate for 127.0.0.1 made
// with the openssl command, and a small Python relay (python3's ssl module) that ends TLS and pipes
// each connection to the plain receiver: what reaches the receiver came over a verified TLS session.
import Foundation

/// A TLS relay on 127.0.0.1 in front of a plain HTTP port.
public final class TestTLSRelay: @unchecked Sendable {
    /// The certificate (PEM) the relay presents: trust it with `--notify-ca-file`.
    public let certificateFile: String
    /// The port it listens on.
    public let port: UInt16
    private let relay: TestProcess
    private let folder: URL

    static let script = #"""
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
target = int(sys.argv[3])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(32)
print(server.getsockname()[1], flush=True)

def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass

def handle(client):
    try:
        tls = ctx.wrap_socket(client, server_side=True)
    except (OSError, ssl.SSLError) as e:
        print("handshake refused:", e, flush=True)
        client.close()
        return
    upstream = socket.create_connection(("127.0.0.1", target))
    back = threading.Thread(target=pipe, args=(upstream, tls), daemon=True)
    back.start()
    pipe(tls, upstream)
    back.join(30)
    for s in (tls, upstream):
        try:
            s.close()
        except OSError:
            pass

while True:
    conn, _ = server.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""#

    private init(certificateFile: String, port: UInt16, relay: TestProcess, folder: URL) {
        self.certificateFile = certificateFile
        self.port = port
        self.relay = relay
        self.folder = folder
    }

    /// Makes a certificate and starts the relay in front of `targetPort` (waits without blocking a thread).
    public static func start(targetPort: UInt16) async throws -> TestTLSRelay {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-tls-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let certificateFile = folder.appendingPathComponent("cert.pem").path
        let key = folder.appendingPathComponent("key.pem").path
        let openssl = try TestProcess("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificateFile,
                                                           "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        guard await openssl.waitForExit(timeout: 60) == 0 else { throw POSIXError(.EIO) }
        let scriptFile = folder.appendingPathComponent("relay.py")
        try script.write(to: scriptFile, atomically: true, encoding: .utf8)
        let relay = try TestProcess("/usr/bin/python3", ["-u", scriptFile.path, certificateFile, key, String(targetPort)])
        var port: UInt16?
        _ = await eventually(timeout: 60) {
            port = relay.output.split(separator: "\n").first.flatMap { UInt16($0) }
            return port != nil || !relay.process.isRunning
        }
        guard let port else { throw POSIXError(.ECONNREFUSED) }
        return TestTLSRelay(certificateFile: certificateFile, port: port, relay: relay, folder: folder)
    }

    deinit {
        relay.signal(SIGKILL)
        try? FileManager.default.removeItem(at: folder)
    }

    /// `https://127.0.0.1:PORT` + `path`.
    public func url(_ path: String = "/hook") -> String { "https://127.0.0.1:\(port)\(path)" }

    /// What the relay printed (refused handshakes).
    public var output: String { relay.output }
}
