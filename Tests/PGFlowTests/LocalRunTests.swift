// Local mode: calling a flow records its flow run, task runs, states and results.
import Foundation
import PGFlow
import PGFlowPostgres
import Testing

@Suite struct LocalRunTests {
    struct Day: Codable, Sendable { var day: String; var rows: Int }

    @Test func aFlowCallRecordsItsRunTasksStatesAndResults() async throws {
        try await withSDK { (t) async throws in
            let double = FlowTask("double") { (n: Int) in n * 2 }
            let etl = Flow("etl", tags: ["nightly"], runName: "etl-{day}") { (p: Day) -> Int in
                try await double(p.rows) + double(1)
            }
            let output = try await etl(Day(day: "2026-11-21", rows: 20))
            #expect(output == 42)

            let run = try #require(try await t.rows(
                "SELECT id, name, state_name, result::text, parameters->>'day', tags::text FROM pgflow.flow_run_history WHERE flow = 'etl'").first)
            #expect(run[1] == "etl-2026-11-21")
            #expect(run[2] == "Completed")
            #expect(run[3] == "42")
            #expect(run[4] == "2026-11-21")
            #expect(run[5] == "{nightly}")
            let tasks = try await t.rows(
                "SELECT id, dynamic_key, state_name, result::text, inputs::text FROM pgflow.task_run_history WHERE flow_run_id = $1::uuid ORDER BY dynamic_key",
                [run[0]])
            #expect(tasks.map { $0[1] } == ["0", "1"])
            #expect(tasks.map { $0[3] } == ["40", "2"])
            #expect(tasks.map { $0[4] } == ["20", "1"])
            for task in tasks {
                #expect(try await t.taskStates(task[0]!) == ["Pending", "Running", "Completed"])
            }
            let flowID = try #require(UUID(uuidString: run[0]!))
            #expect(try await t.flowStates(flowID) == ["Pending", "Running", "Completed"])
        }
    }

    @Test func aTaskOutsideAFlowIsAPlainFunction() async throws {
        try await withSDK { (t) async throws in
            let calls = Counter()
            let square = FlowTask("square") { (n: Int) -> Int in
                calls.increment()
                return n * n
            }
            #expect(try await square(7) == 49)
            #expect(calls.count == 1)
            #expect(try await t.column("SELECT count(*) FROM pgflow.task_runs") == ["0"])
            #expect(try await t.column("SELECT count(*) FROM pgflow.flow_runs") == ["0"])
        }
    }

    @Test func aFailingFlowIsRecordedFailedAndRethrows() async throws {
        try await withSDK { (t) async throws in
            let flow = Flow("fails") { (n: Int) -> Int in throw Boom() }
            await #expect(throws: Boom.self) { try await flow(1) }
            let run = try #require(try await t.rows("SELECT state_name, state_message, parameters::text FROM pgflow.flow_runs").first)
            #expect(run[0] == "Failed")
            #expect(run[1] == "boom")
            #expect(run[2] == "{\"input\": 1}")
        }
    }

    @Test func resultsAreQueryableJSONAndOversizedOnesFailClearly() async throws {
        try await withSDK { (t) async throws in
            struct Report: Codable, Sendable, Equatable { var name: String; var values: [Int] }
            let report = FlowTask("report") { (n: Int) in Report(name: "r\(n)", values: Array(0..<n)) }
            let flow = Flow("reports") { (n: Int) -> Report in try await report(n) }
            let small = try await flow(3)
            #expect(small == Report(name: "r3", values: [0, 1, 2]))
            #expect(try await t.column("SELECT result->>'name' FROM pgflow.task_run_history") == ["r3"])
            #expect(try await t.column("SELECT result->'values'->>2 FROM pgflow.flow_run_history") == ["2"])

            let result = try await flow.run(5_000)  // ~25 kB of JSON, over the test engine's 4 kB
            #expect(result.stateName == "Failed")
            let message = try #require(try await t.column(
                "SELECT state_message FROM pgflow.task_runs WHERE state_name = 'Failed'").first ?? nil)
            #expect(message.contains("the result of task report is"))
            #expect(message.contains("over the limit of 4096 bytes"))
        }
    }
}
