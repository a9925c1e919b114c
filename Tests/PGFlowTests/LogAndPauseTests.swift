// Run logs reach pgflow.logs tagged with their runs; a paused flow waits for resume or times out.
import Foundation
import Logging
import PGFlow
import PGFlowClient
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct LogAndPauseTests {
    @Test func runLoggerRecordsGoToTheLogsTableTaggedWithTheirRuns() async throws {
        try await withSDK { (t) async throws in
            let step = FlowTask("logging-step") { (n: Int) -> Int in
                runLogger().warning("inside the task", metadata: ["n": "\(n)"])
                return n
            }
            let flow = Flow("logging", logPrints: true) { (n: Int) -> Int in
                FlowContext.current!.logger.info("in the flow")
                print("printed", n)
                return try await step(n)
            }
            let result = try await flow.run(7)
            let rows = try await t.rows(
                """
                SELECT l.level::text, l.name, l.message, l.flow_run_id = $1 AS flow, t.task_key
                  FROM pgflow.logs l LEFT JOIN pgflow.task_runs t ON t.id = l.task_run_id ORDER BY l.id
                """, [result.flowRunID])
            #expect(rows == [
                ["20", "pgflow.run", "in the flow", "t", nil],
                ["20", "print", "printed 7", "t", nil],
                ["30", "pgflow.run", "inside the task n=7", "t", "logging-step"],
            ])
        }
    }

    @Test func printsAreNotCapturedUnlessAsked() async throws {
        try await withSDK { (t) async throws in
            let flow = Flow("quiet") { (n: Int) -> Int in
                print("not recorded")
                return n
            }
            _ = try await flow(1)
            #expect(try await t.column("SELECT count(*) FROM pgflow.logs") == ["0"])
        }
    }

    @Test func aPausedFlowContinuesWhenResumed() async throws {
        try await withSDK { (t) async throws in
            let flow = Flow("approval") { (n: Int) -> Int in
                try await pause(timeout: .seconds(60), message: "waiting for approval")
                return n + 1
            }
            let engine = t.engine
            let run = Task { try await flow.run(1, engine: engine) }
            var paused: String?
            #expect(try await eventually(timeout: 60) {
                paused = try await t.column("SELECT id FROM pgflow.flow_runs WHERE state_name = 'Paused'").first ?? nil
                return paused != nil
            })
            let id = UUID(uuidString: try #require(paused))!
            let resumed = try await t.engine.pool.withConnection { try PGFlowClient.resumeFlowRun(id, on: $0) }
            #expect(resumed.status == .accepted)
            let result = try await run.value
            #expect(try result.get() == 2)
            #expect(try await t.flowStates(result.flowRunID) == ["Pending", "Running", "Paused", "Running", "Completed"])
        }
    }

    @Test func aPausedFlowFailsAtItsTimeout() async throws {
        try await withSDK { (t) async throws in
            let flow = Flow("unapproved") { (n: Int) -> Int in
                try await pause(timeout: .milliseconds(300))
                return n
            }
            let result = try await flow.run(1)
            #expect(result.stateName == "TimedOut")
            #expect(result.error as? FlowRunError == .pauseTimedOut(flowRunID: result.flowRunID, seconds: 0.3))
        }
    }
}
