// pgflow-api: the HTTP API. Wiring only: parse flags and PGFLOW_* variables, build the API, run its
// services in one ServiceGroup (SIGTERM/SIGINT: stop accepting, finish requests, end live streams).
import ArgumentParser
import Foundation
import Logging
import PGFlowAPI
import PGFlowPostgres
import ServiceLifecycle

@main
struct APICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgflow-api",
        abstract: "Serve pgflow's HTTP API (JSON, OpenAPI at /api/openapi.json, live stream at /api/stream, /metrics) and the web dashboard at /.",
        discussion: """
            Environment: PGFLOW_DATABASE_URL (else the libpq PG* variables), PGFLOW_API_HOST, PGFLOW_API_PORT,
            PGFLOW_API_METRICS_PORT, PGFLOW_API_POOL_SIZE, PGFLOW_LISTEN_DATABASE_URL, PGFLOW_LOG_LEVEL, PGFLOW_API_SESSION_KEY (seals dashboard
            session cookies; give replicas the same one). Every request needs
            `Authorization: Bearer <token>` (create one with `pgflow api token create --name NAME --scope read|run|admin`)
            except GET /api/health and GET /api/openapi.json.
            """)

    @Option(help: "Address to bind (default 127.0.0.1, or $PGFLOW_API_HOST).") var host: String?
    @Option(help: "Port (default 4200, or $PGFLOW_API_PORT; 0 picks a free one and prints it).") var port: Int?
    @Option(name: .customLong("metrics-port"), help: "Serve /metrics without a token on this port instead of with a read token on --port.") var metricsPort: Int?
    @Option(name: .customLong("pool-size"), help: "Most database connections (default 8).") var poolSize: Int?
    @Option(name: .customLong("max-body-bytes"), help: "Largest request body (default 1 MiB).") var maxBodyBytes: Int?
    @Flag(name: .customLong("insecure-no-auth"), help: "Serve without tokens (loopback addresses only).") var insecureNoAuth = false
    @Flag(name: .customLong("no-ui"), help: "Do not serve the web dashboard at / (the JSON API only).") var noUI = false
    @Option(name: .customLong("database-url"), help: "libpq URL (default: $PGFLOW_DATABASE_URL).") var databaseURL: String?
    @Option(name: .customLong("listen-database-url"), help: "libpq URL of the live stream's LISTEN connection (default: $PGFLOW_LISTEN_DATABASE_URL, else the database URL). Behind a transaction-mode PgBouncer: PostgreSQL's own URL (LISTEN needs a session).") var listenDatabaseURL: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let level = env["PGFLOW_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "pgflow.api")
        var c = APIConfiguration()
        c.host = host ?? env["PGFLOW_API_HOST"] ?? c.host
        c.port = port ?? env["PGFLOW_API_PORT"].flatMap(Int.init) ?? c.port
        c.metricsPort = metricsPort ?? env["PGFLOW_API_METRICS_PORT"].flatMap(Int.init)
        c.poolSize = poolSize ?? env["PGFLOW_API_POOL_SIZE"].flatMap(Int.init) ?? c.poolSize
        c.maxBodyBytes = maxBodyBytes ?? c.maxBodyBytes
        c.insecureNoAuth = insecureNoAuth
        c.dashboard = !noUI
        c.sessionSecret = env["PGFLOW_API_SESSION_KEY"]
        c.databaseURL = databaseURL ?? env["PGFLOW_DATABASE_URL"] ?? ""
        c.listenDatabaseURL = listenDatabaseURL ?? env["PGFLOW_LISTEN_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            let registry = APIServer.bootstrapMetrics()
            let host = c.host
            let server = try APIServer(configuration: c, logger: logger, registry: registry) { port in
                FileHandle.standardOutput.write(Data("pgflow-api: listening on http://\(host.contains(":") ? "[\(host)]" : host):\(port)\n".utf8))
            }
            if c.insecureNoAuth {
                logger.warning("!!! --insecure-no-auth: EVERY REQUEST IS ALLOWED WITHOUT A TOKEN (loopback only); do not use this beyond a laptop !!!")
            }
            let group = ServiceGroup(configuration: .init(services: server.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch let error as APIConfigurationError {
            FileHandle.standardError.write(Data("pgflow-api: \(error)\n".utf8))
            throw ExitCode(64)
        }
    }
}
