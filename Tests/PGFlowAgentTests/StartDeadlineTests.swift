// The agent's start deadline: until when a run it holds may start (its last proof of liveness + the
// fresh window + the fence timeout). Pure logic on the monotonic clock; no database is reached.
import CPGFlowSpawn
import Foundation
import Logging
import PGFlowPostgres
import Testing

@testable import PGFlowAgent

struct StartDeadlineTests {
    static func heartbeat(registeredAt: Int64) -> AgentHeartbeat {
        let pool = PostgresPool(configuration: PostgresConfiguration("host=/nonexistent dbname=unused"), maxConnections: 1)
        let configuration = AgentConfiguration(queues: ["default"], heartbeatInterval: .milliseconds(200), fenceTimeout: .seconds(1))
        return AgentHeartbeat(configuration: configuration, pool: pool, agentID: UUID(), states: StateBatcher(pool: pool, agentID: UUID()),
                              running: RunningRuns(), logger: Logger(label: "test"), registeredAt: registeredAt)
    }

    @Test func theDeadlineIsTheProofPlusTheFreshWindowPlusTheFence() {
        let now = pgflow_monotonic_ms()
        // heartbeat 200 ms + 1 s fresh window, fence 1 s
        #expect(Self.heartbeat(registeredAt: now).startDeadline == now + 2_200)
    }

    @Test func aRunMayStartOnlyBeforeTheDeadline() {
        let now = pgflow_monotonic_ms()
        #expect(Self.heartbeat(registeredAt: now).mayStart, "just registered: its claims may start")
        #expect(!Self.heartbeat(registeredAt: now - 2_300).mayStart, "registered 2.3 s ago without a successful heartbeat since")
    }
}
