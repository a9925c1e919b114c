// The agent as a library: in-process Swift flows, unknown flows, cooperative cancellation.
import Foundation
import Logging
import PGFlowPostgres
import PGFlowTestSupport
import Synchronization
import Testing

@testable import PGFlowAgent

@Suite struct InProcessAgentTests {
    /// Runs an agent with `flows` on queue default while `body` runs, then cancels it.
    static func withAgent(
        _ db: TestDatabase, flows: [AgentFlow], heartbeat: Duration = .milliseconds(200), reconcileAfter: Duration = .seconds(30),
        poll: Duration = .milliseconds(100), _ body: (Agent) async throws -> Void
    ) async throws {
        let pool = PostgresPool(configuration: db.configuration, maxConnections: 4)
        let agent = Agent(
            configuration: AgentConfiguration(queues: ["default"], pollInterval: poll, heartbeatInterval: heartbeat,
                                              killGracePeriod: .seconds(1), databaseURL: db.conninfo, reconcileAfter: reconcileAfter,
                                              heartbeatTimeout: heartbeat * 3 + .seconds(60)),
            pool: pool, flows: flows, logger: Logger(label: "test.agent"))
        let running = Task { try await agent.run() }
        defer { running.cancel() }
        try await body(agent)
        running.cancel()
        _ = await running.result
        #expect(agent.runningCount == 0)
    }

    @Test func aRegisteredFlowRunsInProcessWithItsParametersAndResult() async throws {
        struct Params: Decodable { let n: Int }
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('math', 'double', 'swift:double', '{\"n\": 1}')")
            let runID = try c.query("SELECT pgflow.run_deployment('math/double', '{\"n\": 21}')").scalar(UUID.self)
            let double = AgentFlow(name: "double") { context in
                let p = try context.parameters(as: Params.self)
                context.log("doubling \(p.n)")
                return "{\"answer\": \(p.n * 2)}"
            }
            try await Self.withAgent(db, flows: [double]) { _ async throws in
                #expect(try await eventually(timeout: 60) {
                    try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Completed"
                })
            }
            #expect(try c.query("SELECT result::text FROM pgflow.flow_run_history WHERE id = $1", [runID]).scalar(String.self) == #"{"answer": 42}"#)
            #expect(try c.query("SELECT message FROM pgflow.logs WHERE flow_run_id = $1 AND name = 'flow'", [runID]).scalar(String.self) == "doubling 21")
        }
    }

    @Test func anUnknownFlowFailsTheRunWithAClearMessage() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('math', 'triple', 'swift:triple')")
            let runID = try c.query("SELECT pgflow.run_deployment('math/triple')").scalar(UUID.self)
            try await Self.withAgent(db, flows: [AgentFlow(name: "double") { _ in nil }]) { _ async throws in
                #expect(try await eventually(timeout: 60) {
                    try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Failed"
                })
            }
            let message = try c.query("SELECT state_message FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self)
            #expect(message.contains(#"no flow named "triple" is registered"#) && message.contains("registered: double"), "\(message)")
        }
    }

    @Test func cancellingAnInProcessFlowCancelsItsTask() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('wait', 'forever', 'swift:forever')")
            let runID = try c.query("SELECT pgflow.run_deployment('wait/forever')").scalar(UUID.self)
            let forever = AgentFlow(name: "forever") { _ in
                try await Task.sleep(for: .seconds(3600))  // throws CancellationError when cancelled
                return nil
            }
            try await Self.withAgent(db, flows: [forever]) { _ async throws in
                #expect(try await eventually(timeout: 60) {
                    try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Running"
                })
                try c.query("SELECT pgflow.cancel_flow_run($1)", [runID])
                #expect(try await eventually(timeout: 60) {
                    try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Cancelled"
                })
            }
        }
    }

    /// A run the database gives the agent, started by a claim whose reply the agent never read (a broken
    /// connection), is given back to its queue by the reconcile pass, not crashed: no process ran it.
    @Test func aRunStartedByALostClaimReplyIsGivenBackNotCrashed() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_work_queue('elsewhere')")
            try c.query("SELECT pgflow.create_deployment('lost', 'reply', 'true', p_work_queue => 'elsewhere')")
            let runID = try c.query("SELECT pgflow.run_deployment('lost/reply')").scalar(UUID.self)
            try await Self.withAgent(db, flows: [], heartbeat: .seconds(3600), reconcileAfter: .seconds(1), poll: .seconds(3600)) { agent in
                #expect(await eventually(timeout: 60) { agent.heartbeat != nil }, "the agent registered")
                let agentID = try #require(agent.agentID)
                // The claim this agent "sent" (it serves only queue default, so it never claims this run itself).
                #expect(try c.query("SELECT count(*) FROM pgflow.claim_flow_runs($1, ARRAY['elsewhere'], 1, true)", [agentID]).scalar(Int.self) == 1)
                #expect(try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Running")
                try await Task.sleep(for: .seconds(1.5))  // unchanged for longer than reconcileAfter
                // A pass sets its read aside while a claim older than reconcileAfter is in flight (a loaded
                // machine can hold the agent's start-up claim that long): passes are repeated until the run is
                // given back. The pass that does it may be the agent's own first one (its heartbeat loop starts
                // with one, which a loaded machine can delay past this point): then this test's passes find
                // nothing left to reconcile, so the outcome is read from the database, not from a report.
                let heartbeat = try #require(agent.heartbeat)
                #expect(try await eventually(timeout: 60) {
                    _ = try await heartbeat.runOnce()
                    return try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) != "Running"
                })
                let row = try #require(try c.query("SELECT state_name, state_message, agent_id IS NULL FROM pgflow.flow_runs WHERE id = $1", [runID]).first)
                #expect(try row.decode(String.self, at: 0) == "AwaitingRetry")
                #expect(try row.decode(String.self, at: 1).contains("no process ran it"))
                #expect(try row.decode(Bool.self, at: 2), "no agent holds it any more")
            }
        }
    }

    /// A run the reaper took away (the agent looked dead) is stopped by the agent's next heartbeat pass,
    /// with no state written: it may be another agent's now.
    @Test func aHeartbeatPassStopsARunThatIsNoLongerTheAgents() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('reaped', 'sleeper', 'sleep 600')")
            let runID = try c.query("SELECT pgflow.run_deployment('reaped/sleeper')").scalar(UUID.self)
            try await Self.withAgent(db, flows: [], heartbeat: .seconds(3600)) { agent in
                let pid = try #require(try await AgentProcessTests.childPID(c, runID))
                #expect(processIsAlive(pid))
                // The reaper an hour from now: the agent's heartbeat (hourly here) has lapsed.
                #expect(try c.query("SELECT pgflow.reap_crashed_runs(interval '60 seconds', now() + interval '1 hour')").scalar(Int.self) == 1)
                let heartbeat = try #require(agent.heartbeat)
                let report = try await heartbeat.runOnce()
                #expect(report.fenced == 1)
                #expect(await eventually(timeout: 60) { !processIsAlive(pid) })
                #expect(await eventually(timeout: 60) { agent.runningCount == 0 })
                #expect(try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Crashed")
            }
        }
    }

    /// An in-process flow has no supervisor: the agent itself cancels it once its heartbeat has failed
    /// for the fence timeout (here: the agent's connections go through a proxy the test cuts).
    /// An agent whose heartbeat has not succeeded for the fresh window and the fence timeout (here its
    /// heartbeat waits on a row lock; a frozen agent is the same) claims nothing — what it claimed could not
    /// start: the reaper may hand its runs to another agent meanwhile — and once its heartbeat succeeds
    /// again it claims and runs the run once. Before the claim checked the start deadline, the agent
    /// claimed the run and started it at once, its claim unproven.
    @Test func aStaleAgentClaimsNothingUntilItsHeartbeatSucceeds() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('once', 'mark', 'swift:mark')")
            let starts = Mutex(0)
            let mark = AgentFlow(name: "mark") { _ in
                starts.withLock { $0 += 1 }
                return nil
            }
            let pool = PostgresPool(configuration: db.configuration, maxConnections: 4)
            let agent = Agent(
                configuration: AgentConfiguration(queues: ["default"], pollInterval: .milliseconds(100), heartbeatInterval: .milliseconds(200),
                                                  killGracePeriod: .seconds(1), databaseURL: db.conninfo, reconcileAfter: .seconds(1),
                                                  fenceTimeout: .seconds(8), heartbeatTimeout: .seconds(60)),
                pool: pool, flows: [mark], logger: Logger(label: "test.agent"))
            // (a fence of 8 s: once the heartbeat is back, a claim may start for 9.2 s — room for a starved
            // machine between the claim and the start, where a 1 s fence left a run claimed, not started
            // past its deadline, given back and claimed again: a second attempt this test would count)
            let running = Task { try await agent.run() }
            defer { running.cancel() }
            #expect(await eventually(timeout: 60) { agent.heartbeat?.mayStart == true })
            // The heartbeat's UPDATE of the agent's row waits; a claim only reads that row.
            let locker = try db.connect()
            try locker.query("BEGIN")
            try locker.query("SELECT 1 FROM pgflow.agents FOR NO KEY UPDATE")
            #expect(await eventually(timeout: 60) { agent.heartbeat?.mayStart == false }, "the start deadline did not pass")
            let runID = try c.query("SELECT pgflow.run_deployment('once/mark')").scalar(UUID.self)
            try await Task.sleep(for: .seconds(3))  // 30 polls: time enough to claim it, were claims made
            #expect(try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Scheduled",
                    "a stale agent claimed the run")
            #expect(starts.withLock { $0 } == 0, "the flow started while the agent's claim was unproven")
            try locker.query("ROLLBACK")
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Completed"
            })
            #expect(starts.withLock { $0 } == 1)
            #expect(try c.query("SELECT count(*) FROM pgflow.flow_run_states WHERE flow_run_id = $1 AND state_type = 'RUNNING'", [runID]).scalar(Int.self) == 1,
                    "one attempt, not a claim given back and claimed again")
            running.cancel()
            _ = await running.result
        }
    }

    @Test func anInProcessFlowStopsWhenTheAgentIsCutOffPastTheFence() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('wait', 'forever', 'swift:forever')")
            let runID = try c.query("SELECT pgflow.run_deployment('wait/forever')").scalar(UUID.self)
            let port = try #require(Int(try c.query("SHOW port").scalar(String.self)))
            let user = try c.query("SELECT current_user::text").scalar(String.self)
            let proxy = try TCPProxy(upstreamPort: port)
            defer { proxy.close() }
            let pool = PostgresPool(
                configuration: PostgresConfiguration("host=127.0.0.1 port=\(proxy.port) user=\(user) dbname=\(db.name)", connectTimeout: 2),
                maxConnections: 4)
            let started = Mutex(false)
            let forever = AgentFlow(name: "forever") { _ in
                started.withLock { $0 = true }
                try await Task.sleep(for: .seconds(3600))
                return nil
            }
            let agent = Agent(
                configuration: AgentConfiguration(queues: ["default"], pollInterval: .milliseconds(100), heartbeatInterval: .milliseconds(200),
                                                  killGracePeriod: .seconds(1), fenceTimeout: .seconds(1)),
                pool: pool, flows: [forever], logger: Logger(label: "test.agent"))
            let running = Task { try await agent.run() }
            defer { running.cancel() }
            #expect(try await eventually(timeout: 60) {
                try c.query("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "Running"
            })
            // (the flow's body, not only a claim: under load a claim may be left unstarted past its deadline)
            #expect(await eventually(timeout: 60) { started.withLock { $0 } && agent.runningCount == 1 })
            proxy.cut()
            let stopped = await eventually(timeout: 60) { agent.runningCount == 0 }
            #expect(stopped, "the flow was not stopped")
            running.cancel()
            if stopped { _ = await running.result }  // (a flow that was not stopped would keep the agent from ending)
        }
    }
}
