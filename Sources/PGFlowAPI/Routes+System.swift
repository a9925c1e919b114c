// GET /api/health, GET /api/openapi.json and GET /metrics.
import Foundation
import Hummingbird
import PGFlowClient
import Prometheus

extension APIRoutes {
    func addSystemRoutes(metrics: MetricsScrape) {
        add(.get, "/api/health", scope: .none, tag: "system", summary: "Database reachable and schema current (503 otherwise)",
            response: Schema.object(["status": Schema.string, "database": Schema.boolean, "schema_current": Schema.boolean,
                                     "applied_migrations": Schema.array(Schema.integer), "expected_migrations": Schema.array(Schema.integer)],
                                    required: ["status"])) { _, context in
            let expected = SchemaMigrator().migrations.map(\.version)
            let applied: [Int]
            do {
                applied = try await self.read(context) { c in try PGFlowClient.appliedMigrations(on: c) }
            } catch {
                return json("{\"status\":\"database unreachable\",\"database\":false,\"schema_current\":false}", status: .serviceUnavailable)
            }
            let current = Set(expected).isSubset(of: Set(applied))
            let body = "{\"status\":\"\(current ? "ok" : "schema not current: run pgflow db upgrade")\",\"database\":true,\"schema_current\":\(current),"
                + "\"applied_migrations\":\(applied),\"expected_migrations\":\(expected)}"
            return json(body, status: current ? .ok : .serviceUnavailable)
        }
        add(.get, "/api/openapi.json", scope: .none, tag: "system", summary: "This API's OpenAPI 3.1 document", response: Schema.object) { _, context in
            json(self.openAPIDocument)
        }
        if configuration.metricsPort == nil {
            add(.get, "/metrics", scope: .read, tag: "system", summary: "Prometheus metrics (runs, queues, agents, limits, request durations)",
                response: Schema.string, contentType: "text/plain") { _, context in
                try await self.authorize(context)
                return try await metrics.response()
            }
        }
    }

    /// The document, rendered once all routes are in.
    var openAPIDocument: String { documentCache.value(or: { OpenAPIDocument.render(self.operations) }) }
}

/// A value computed once, on first use.
final class Once<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    func value(or make: () -> T) -> T {
        lock.withLock {
            if let stored { return stored }
            let v = make()
            stored = v
            return v
        }
    }
}
