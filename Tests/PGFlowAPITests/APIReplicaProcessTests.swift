// The API's reads on a replica: pgflow-api with its pool on a hot standby (read-only) and its LISTEN
// connection on the primary serves every GET route of the JSON API and the dashboard; changes need
// the primary. docs/scaling.md lists the routes from this test.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct APIReplicaProcessTests {
    /// Every GET route, with objects that exist (the live stream is not here: it writes a lease).
    static func readRoutes(runID: UUID) -> [String] {
        let run = runID.uuidString.lowercased()
        return ["/api/health", "/api/openapi.json", "/api/work-queues", "/api/work-queues/default", "/api/work-queues/default/preview",
                "/api/concurrency-limits", "/api/concurrency-limits/db", "/api/variables", "/api/variables/v", "/api/agents", "/api/flows",
                "/api/deployments", "/api/deployments/etl/daily", "/api/deployments/etl/daily/schedules", "/api/events", "/api/automations",
                "/api/notifications", "/api/flow-runs", "/api/flow-runs?state_type=SCHEDULED", "/api/flow-runs/\(run)",
                "/api/flow-runs/\(run)/states", "/api/flow-runs/\(run)/task-runs", "/api/flow-runs/\(run)/logs", "/api/task-runs",
                "/", "/flow-runs", "/flow-runs/\(run)", "/deployments", "/deployments/etl/daily", "/work-queues", "/concurrency-limits",
                "/agents", "/flows", "/events", "/automations"]
    }

    @Test func everyReadRouteWorksOnAHotStandby() async throws {
        let primary = try await TestDatabase.offPool { try TemporaryCluster() }
        let config = try await TestDatabase.offPool { try primary.createDatabase("replica") }
        let standby = try await TestDatabase.offPool { try primary.addSynchronousStandby() }
        let c = try PostgresConnection(configuration: config)
        try c.query("SELECT pgflow.create_deployment('etl', 'daily', 'true')")
        try c.query("SELECT pgflow.create_deployment_schedule('etl/daily', 'cron', '0 6 * * *')")
        try c.query("SELECT pgflow.set_variable('v', '1')")
        try c.query("SELECT pgflow.create_concurrency_limit('db', 2)")
        let runID = try c.query("SELECT pgflow.run_deployment('etl/daily')").scalar(UUID.self)
        let token = try createToken(c, "reader", "read")
        let runner = try createToken(c, "runner", "run")
        // A synchronous standby has flushed every commit, not necessarily replayed it: wait for the token.
        let replica = try PostgresConnection(configuration: standby.configuration(database: "replica"))
        #expect(try replica.query("SELECT pg_is_in_recovery()").scalar(Bool.self))
        #expect(try await eventually(timeout: 60) {
            try replica.query("SELECT count(*) FROM pgflow.api_tokens WHERE name = 'runner'").scalar(Int.self) == 1
        })

        let api = try await APIProcess.start(conninfo: standby.configuration(database: "replica").conninfo,
                                             ["--listen-database-url", config.conninfo])
        var failed: [String] = []
        for path in Self.readRoutes(runID: runID) {
            let reply = try await api.client(token).get(path)
            if !(200..<300).contains(reply.status) { failed.append("\(path): \(reply.description.prefix(300))") }
        }
        #expect(failed.isEmpty, "GET routes that fail on a hot standby: \(failed)\n\(api.process.output.suffix(2000))")
        // A change is refused by the standby with 503 and a hint (nothing changes): changes go to the primary.
        let change = try await api.client(runner).post("/api/deployments/etl/daily/runs")
        #expect(change.status == 503 && change.object["sqlstate"] as? String == "25006", "\(change)")
        #expect((change.object["hint"] as? String)?.contains("primary") == true, "\(change)")
        #expect(try c.query("SELECT count(*) FROM pgflow.flow_runs").scalar(Int.self) == 1)
        api.process.signal(SIGTERM)
        #expect(await api.process.waitForExit(timeout: 60) != nil)
    }
}
