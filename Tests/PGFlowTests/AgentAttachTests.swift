// An SDK flow registered in an agent attaches to the run the agent claimed (no second flow run).
import Foundation
import Logging
import PGFlow
import PGFlowAgent
import PGFlowPostgres
import Testing

@Suite struct AgentAttachTests {
    struct Params: Codable, Sendable { var day: String; var n: Int }

    @Test func aDeploymentOfASwiftFlowRunsAttachedToTheClaimedRun() async throws {
        try await withSDK { (t) async throws in
            let step = FlowTask("step") { (n: Int) -> Int in
                runLogger().info("step \(n)")
                return n * 3
            }
            let etl = Flow("etl") { (p: Params) -> String in
                let total = try await step.map(Array(0..<p.n)).reduce(0, +)
                return "\(p.day):\(total)"
            }
            _ = try await t.engine.pool.query("SELECT pgflow.create_deployment('etl', 'prod', 'swift:etl')")
            let runID = try await t.engine.pool.query(
                "SELECT pgflow.run_deployment('etl/prod', '{\"day\": \"mon\", \"n\": 4}')").scalar(UUID.self)

            let pool = PostgresPool(configuration: t.database.configuration, maxConnections: 4)
            defer { pool.close() }
            let agent = Agent(
                configuration: AgentConfiguration(queues: ["default"], name: "sdk-test", pollInterval: .milliseconds(100),
                                                  databaseURL: t.database.conninfo),
                pool: pool, flows: [etl.agentFlow], logger: Logger(label: "test-agent"))
            let running = Task { try await agent.run() }
            defer { running.cancel() }
            var state: String?
            for _ in 0..<600 where state != "Completed" && state != "Failed" {
                state = try await t.column("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).first ?? nil
                if state != "Completed" { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(state == "Completed")
            #expect(try await t.column("SELECT count(*) FROM pgflow.flow_runs") == ["1"])
            #expect(try await t.column("SELECT result::text FROM pgflow.flow_run_history WHERE id = $1", [runID]) == ["\"mon:18\""])
            #expect(try await t.column(
                "SELECT count(*) FROM pgflow.task_runs WHERE flow_run_id = $1 AND state_name = 'Completed'", [runID]) == ["4"])
            #expect(try await t.column(
                "SELECT count(*) FROM pgflow.logs WHERE flow_run_id = $1 AND task_run_id IS NOT NULL", [runID]) == ["4"])
            running.cancel()
            try await running.value  // the agent shuts down and deregisters before the pool closes
        }
    }
}
