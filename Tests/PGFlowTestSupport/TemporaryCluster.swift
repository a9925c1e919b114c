// Test support: a private PostgreSQL server a test may restart or stop (the shared one must stay up).
import Foundation
import PGFlowPostgres

/// A throwaway PostgreSQL cluster in /tmp, run as `postgres` when the tests run as root.
public final class TemporaryCluster: @unchecked Sendable {
    /// Its folder (data in `data/`, socket in the folder itself).
    public let directory: String
    /// Its port.
    public let port: Int
    private let bin: String

    /// Creates and starts a cluster (a second or two).
    public init() throws {
        directory = "/tmp/pgflow-cluster-\(UUID().uuidString.prefix(8))"
        port = 56_000 + Int.random(in: 0..<2_000)
        bin = try Self.shell("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1 || pg_config --bindir").trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.shell("mkdir -p \(directory) && if [ $(id -u) -eq 0 ]; then chown postgres: \(directory); fi")
        try asOwner("\(bin)/initdb -D \(directory)/data -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null")
        try asOwner("\(bin)/pg_ctl -D \(directory)/data -l \(directory)/server.log -w -o \"-p \(port) -k \(directory) -c listen_addresses=''\" start >/dev/null")
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
        try asOwner("\(bin)/pg_ctl -D \(directory)/data -l \(directory)/server.log -m fast -w -o \"-p \(port) -k \(directory) -c listen_addresses=''\" restart >/dev/null")
    }

    /// Stops the server (fast shutdown); `start()` brings it back.
    public func stop() throws {
        try asOwner("\(bin)/pg_ctl -D \(directory)/data -m fast -w stop >/dev/null")
    }

    /// Starts a stopped server.
    public func start() throws {
        try asOwner("\(bin)/pg_ctl -D \(directory)/data -l \(directory)/server.log -w -o \"-p \(port) -k \(directory) -c listen_addresses=''\" start >/dev/null")
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
