// PGFlowAPI: pgflow's HTTP API, a Hummingbird 2 service over the same SQL functions as psql, the CLI
// and the agents. Stateless: every request borrows a pooled connection and calls one SQL function
// (PostgresPool runs libpq on the connection's own thread, never on Swift's cooperative pool); live
// updates come from one LISTEN connection per process (`EventHub`); replicas share nothing but the
// database. Every route is registered through `APIRoutes`, which also writes the OpenAPI document.
import Foundation

/// How `pgflow-api` runs; every field has a default (see `pgflow-api --help` for the flags and variables).
public struct APIConfiguration: Sendable {
    /// Address to bind (default 127.0.0.1).
    public var host = "127.0.0.1"
    /// Port (default 4200; 0 picks a free one).
    public var port = 4200
    /// A separate port serving `/metrics` without a token (nil: `/metrics` on the main port, read token required).
    public var metricsPort: Int?
    /// libpq URL of the database.
    public var databaseURL = ""
    /// libpq URL of the live stream's LISTEN connection (nil: `databaseURL`). LISTEN needs a session:
    /// behind a transaction-mode PgBouncer, PostgreSQL's own URL (or a session-mode pool's).
    public var listenDatabaseURL: String?
    /// Most database connections this process opens.
    public var poolSize = 8
    /// Serve without tokens (only allowed on a loopback address).
    public var insecureNoAuth = false
    /// Largest request body accepted, in bytes (larger: 413).
    public var maxBodyBytes = 1 << 20
    /// Seconds between SSE keep-alive comments.
    public var keepAliveSeconds = 15.0
    /// Serve the web dashboard at / (`--no-ui` turns it off).
    public var dashboard = true
    /// The secret that seals dashboard session cookies (nil: a random key per process, so sessions end
    /// when it restarts; replicas behind one address need the same secret).
    public var sessionSecret: String?

    /// The defaults.
    public init() {}

    /// Refuses settings that cannot work or are unsafe, with one line saying what to do.
    public func validate() throws {
        guard (0...65535).contains(port) else { throw APIConfigurationError("--port must be 0 to 65535, got \(port)") }
        if let metricsPort, !(0...65535).contains(metricsPort) { throw APIConfigurationError("--metrics-port must be 0 to 65535, got \(metricsPort)") }
        guard poolSize >= 1 else { throw APIConfigurationError("--pool-size must be at least 1, got \(poolSize)") }
        guard maxBodyBytes >= 1024 else { throw APIConfigurationError("--max-body-bytes must be at least 1024, got \(maxBodyBytes)") }
        if insecureNoAuth && !Self.isLoopback(host) {
            throw APIConfigurationError("--insecure-no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost), not \(host)")
        }
    }

    /// True for 127.0.0.0/8, ::1 and localhost.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// A configuration that cannot work.
public struct APIConfigurationError: Error, CustomStringConvertible {
    /// What is wrong and what to do.
    public let description: String
    init(_ description: String) { self.description = description }
}
