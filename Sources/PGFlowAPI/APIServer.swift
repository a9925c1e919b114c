// Assembles the API: the pool, the router with every route, the live-stream hub, the metrics, and the
// services to run in one ServiceGroup (graceful shutdown on SIGTERM/SIGINT).
import Foundation
import Hummingbird
import Logging
import Metrics
import PGFlowClient
import PGFlowPostgres
import Prometheus
import ServiceLifecycle

/// The HTTP API of one process.
public struct APIServer: Sendable {
    /// The services to run: the HTTP server(s) and the live-stream hub.
    public let services: [any Service]
    /// Every route the router has, as "METHOD /path" (for the test that keeps the OpenAPI document true).
    public let routes: [String]
    /// The OpenAPI document served at /api/openapi.json.
    public let openAPIDocument: String

    /// Builds the API over a new pool. `onRunning` gets the bound port (useful with port 0).
    public init(configuration: APIConfiguration, logger: Logger, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws {
        try configuration.validate()
        let database = PostgresConfiguration(configuration.databaseURL, applicationName: "pgflow-api")
        let pool = PostgresPool(configuration: database, maxConnections: configuration.poolSize)
        var listening = database
        if let url = configuration.listenDatabaseURL { listening.conninfo = url }
        let hub = EventHub(pool: pool, configuration: listening, keepAlive: .milliseconds(Int(configuration.keepAliveSeconds * 1000)), logger: logger)
        let metrics = MetricsScrape(pool: pool, registry: registry)

        let router = Router(context: APIRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: MetricsMiddleware())
        let api = APIRoutes(router: router, pool: pool, configuration: configuration, logger: logger)
        api.addSystemRoutes(metrics: metrics)
        api.addDeploymentRoutes()
        api.addFlowRunRoutes()
        api.addConfigurationRoutes()
        api.addEventRoutes()
        api.addStreamRoute(hub: hub)
        if configuration.dashboard {
            DashboardRoutes(api: api, session: api.session).addRoutes()
        }
        // the API's routes (the dashboard's pages are HTML, not part of the OpenAPI document)
        routes = router.routes.filter { "\($0.path)".hasPrefix("/api/") || "\($0.path)" == "/metrics" }
            .map { "\($0.method.rawValue) \($0.path)" }.sorted()
        openAPIDocument = api.openAPIDocument

        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "pgflow-api"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        var services: [any Service] = [app]
        if let port = configuration.metricsPort {
            let metricsRouter = Router()
            metricsRouter.get("/metrics") { _, _ in try await metrics.response() }
            services.append(Application(router: metricsRouter,
                                        configuration: .init(address: .hostname(configuration.host, port: port), serverName: "pgflow-api-metrics"),
                                        logger: logger))
        }
        services.append(hub)  // shut down first (services stop in reverse order): it ends the open streams
        self.services = services
    }

    /// Installs swift-prometheus as the metrics backend of this process (once, before building servers).
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }
}
