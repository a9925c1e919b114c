// Test support: a private PostgreSQL server a test may restart or stop (the shared one must stay up), and
// its streaming standby, to test a failover.
import Foundation
import PGFlowPostgres

/// A throwaway PostgreSQL cluster in /tmp, run as `postgres` when the tests run as root.
public final class TemporaryCluster: @unchecked Sendable {
    /// Its folder (data in `data/`, socket in the folder itself).
    public let directory: String
    /// Its port.
    public let port: Int
    private let bin: String
    /// `listen_addresses`: '' (the unix socket only) or '127.0.0.1'.
    private let listenAddresses: String

    /// Creates and starts a cluster (a second or two). With `loopback`, it also listens on
    /// 127.0.0.1:`port` (for a `TCPProxy` in front of it); else on its unix socket only.
    public init(loopback: Bool = false) throws {
        directory = "/tmp/pgflow-cluster-\(UUID().uuidString.prefix(8))"
        port = try Self.freePort()
        listenAddresses = loopback ? "127.0.0.1" : ""
        bin = try Self.shell("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1 || pg_config --bindir").trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.shell("mkdir -p \(directory) && if [ $(id -u) -eq 0 ]; then chown postgres: \(directory); fi")
        try asOwner("\(bin)/initdb -D \(directory)/data -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null")
        try start()
    }

    /// A streaming standby of `primary` (pg_basebackup -R over the primary's socket), started, listening
    /// on 127.0.0.1 too.
    private init(standbyOf primary: TemporaryCluster) throws {
        directory = "/tmp/pgflow-cluster-\(UUID().uuidString.prefix(8))"
        port = try Self.freePort()
        listenAddresses = "127.0.0.1"
        bin = primary.bin
        try Self.shell("mkdir -p \(directory) && if [ $(id -u) -eq 0 ]; then chown postgres: \(directory); fi")
        try asOwner("\(bin)/pg_basebackup -D \(directory)/data -h \(primary.directory) -p \(primary.port) -U postgres -R -X stream --checkpoint=fast >/dev/null")
        try start()
    }

    /// Adds a streaming standby and makes it synchronous (`synchronous_standby_names = '*'` on this
    /// server): from then on a commit returns only once the standby has flushed it, so a promotion loses
    /// no committed transaction. Returns once the standby streams as `sync`.
    public func addSynchronousStandby() throws -> TemporaryCluster {
        let standby = try TemporaryCluster(standbyOf: self)
        let c = try PostgresConnection(configuration: configuration())
        try c.execute(script: "ALTER SYSTEM SET synchronous_standby_names = '*'")
        try c.execute(script: "SELECT pg_reload_conf()")
        let deadline = Date().addingTimeInterval(60)
        while try c.query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'").scalar(Int.self) == 0 {
            guard Date() < deadline else {
                throw PostgresError(kind: .usage, message: "the standby on port \(standby.port) did not stream synchronously within 60 s: see \(standby.directory)/server.log")
            }
            usleep(50_000)
        }
        return standby
    }

    /// Promotes a standby to primary (returns once it accepts writes).
    public func promote() throws {
        try asOwner("\(bin)/pg_ctl -D \(directory)/data -w -t 60 promote >/dev/null")
    }

    deinit {
        _ = try? asOwner("\(bin)/pg_ctl -D \(directory)/data -m immediate -w stop >/dev/null 2>&1")
        _ = try? Self.shell("rm -rf \(directory)")
    }

    /// Settings for a database of this cluster.
    public func configuration(database: String = "postgres") -> PostgresConfiguration {
        PostgresConfiguration("host=\(directory) port=\(port) user=postgres dbname=\(database)", applicationName: "pgflow-tests")
    }

    /// Creates a database with the current pgflow schema and returns its settings.
    public func createDatabase(_ name: String) throws -> PostgresConfiguration {
        let admin = try PostgresConnection(configuration: configuration())
        try admin.execute(script: "CREATE DATABASE \(try admin.quoteIdentifier(name))")
        let c = try PostgresConnection(configuration: configuration(database: name))
        try c.execute(script: try TestDatabase.repositoryFile("sql/schema.sql"))
        return configuration(database: name)
    }

    /// Restarts the server (fast shutdown: sessions are terminated, open transactions roll back).
    public func restart() throws {
        try asOwner("\(bin)/pg_ctl -D \(directory)/data -l \(directory)/server.log -m fast -w -o \"\(options)\" restart >/dev/null")
    }

    /// Stops the server (fast shutdown, or `immediate`: a crash, as a dead primary); `start()` brings it back.
    public func stop(immediate: Bool = false) throws {
        try asOwner("\(bin)/pg_ctl -D \(directory)/data -m \(immediate ? "immediate" : "fast") -w stop >/dev/null")
    }

    /// Starts a stopped server.
    public func start() throws {
        try asOwner("\(bin)/pg_ctl -D \(directory)/data -l \(directory)/server.log -w -t 60 -o \"\(options)\" start >/dev/null")
    }

    private var options: String { "-p \(port) -k \(directory) -c listen_addresses='\(listenAddresses)'" }

    /// A port from 56000–57999 that nothing on 127.0.0.1 listens on now.
    private static func freePort() throws -> Int {
        for _ in 0..<50 {
            let port = 56_000 + Int.random(in: 0..<2_000)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
        throw PostgresError(kind: .usage, message: "no free port in 56000–57999 on 127.0.0.1")
    }

    private func asOwner(_ command: String) throws {
        let escaped = command.replacingOccurrences(of: "'", with: "'\\''")
        try Self.shell("if [ $(id -u) -eq 0 ]; then runuser -u postgres -- sh -c '\(escaped)'; else sh -c '\(escaped)'; fi")
    }

    /// Runs a shell command (blocking; tests only). Not Foundation.Process: its waitUntilExit can miss
    /// the exit of a command that daemonizes a grandchild (pg_ctl start), and hang.
    @discardableResult
    static func shell(_ command: String) throws -> String {
        let output = "/tmp/pgflow-shell-\(UUID().uuidString).out"
        defer { unlink(output) }
        let status = system("(\(command)) >\(output) 2>&1 </dev/null")
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw PostgresError(kind: .usage, message: "`\(command)` failed (\(status)): \(text)")
        }
        return text
    }
}
