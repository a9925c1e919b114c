// A real in-process agent connected as pgflow_agent (docs/security.md): it registers, claims, runs a
// flow with its parameters, logs, completes it and deregisters with that role's grants alone.
import Foundation
import Logging
import PGFlowAgent
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct AgentRoleTests {
    @Test func anAgentRunsAFlowAsPgflowAgent() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('role', 'double', 'swift:double')")
            let runID = try c.query("SELECT pgflow.run_deployment('role/double', '{\"n\": 21}')").scalar(UUID.self)
            // every session runs as the role (libpq's options: SET ROLE at connection start)
            let conninfo = db.conninfo + " options='-c role=pgflow_agent'"
            let pool = PostgresPool(configuration: PostgresConfiguration(conninfo), maxConnections: 4)
            defer { pool.close() }
            #expect(try await pool.query("SELECT current_user::text").scalar(String.self) == "pgflow_agent")
            let double = AgentFlow(name: "double") { context in
                struct Params: Decodable { let n: Int }
                let n = try context.parameters(as: Params.self).n
                context.log("doubling \(n)")
                return "\(n * 2)"
            }
            let agent = Agent(
                configuration: AgentConfiguration(queues: ["default"], pollInterval: .milliseconds(100), heartbeatInterval: .milliseconds(200),
                                                  databaseURL: conninfo),
                pool: pool, flows: [double], logger: Logger(label: "test.agent.role"))
            let running = Task { try await agent.run() }
            defer { running.cancel() }
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Completed"
            })
            running.cancel()
            _ = await running.result
            #expect(try c.query("SELECT result::text FROM pgflow.flow_run_history WHERE id = $1", [runID]).scalar(String.self) == "42")
            #expect(try c.query("SELECT count(*) FROM pgflow.logs WHERE flow_run_id = $1 AND message = 'doubling 21'", [runID]).scalar(Int.self) == 1)
            #expect(try c.query("SELECT status FROM pgflow.agents").scalar(String.self) == "OFFLINE", "it deregistered")
        }
    }
}
