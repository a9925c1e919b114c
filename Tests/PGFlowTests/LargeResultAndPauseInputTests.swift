// Large results go to local result storage and read back the same; S3 storage is refused as not
// supported yet; a flow paused for typed input refuses bad input (staying paused) and continues with good.
import Foundation
@testable import PGFlow
import PGFlowClient
import PGFlowPostgres
import PGFlowTestSupport
import Testing

private struct Approval: PauseInput, Equatable {
    var approved: Bool
    var note: String?
}

private struct Review: PauseInput {
    var approved: Bool
    var score: Int
    var ratio: Double
    var tags: [String]
    var reviewer: Reviewer?
    struct Reviewer: Codable, Sendable { var name: String }
}

@Suite struct LargeResultAndPauseInputTests {
    @Test func aFiftyMegabyteResultRoundTripsThroughLocalResultStorage() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-results-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withSDK { (t) async throws in
            let engine = PGFlowEngine(pool: t.engine.pool, maxPayloadBytes: 1 << 20, resultStorage: .directory(directory.path))
            let big = String(repeating: "0123456789abcdef", count: 50 * (1 << 20) / 16)  // 50 MiB of text
            let flow = Flow("big-result") { (n: Int) -> String in big }
            let result = try await flow.run(1, engine: engine)
            #expect(result.stateName == "Completed")
            #expect(result.value?.count == big.count)
            // PostgreSQL keeps a small reference, the file holds the JSON
            let stored = try #require(try await t.column("SELECT value::text FROM pgflow.results WHERE run_id = $1", [result.flowRunID]).first ?? nil)
            #expect(stored.utf8.count < 400 && stored.contains("$pgflow_result") && stored.contains(directory.path))
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            #expect(files.count == 1)
            let size = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(files[0]).path)[.size] as? Int
            #expect((size ?? 0) >= 50 << 20)
            let readBack = try await engine.result(of: result.flowRunID, as: String.self)
            #expect(readBack == big)
            // a small result stays in PostgreSQL and reads the same way
            let small = try await Flow("small-result") { (n: Int) -> Int in n * 2 }.run(21, engine: engine)
            #expect(try await engine.result(of: small.flowRunID, as: Int.self) == 42)
        }
    }

    @Test func aLargeTaskResultIsStoredAndACacheHitReadsItBack() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-results-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withSDK { (t) async throws in
            let engine = PGFlowEngine(pool: t.engine.pool, maxPayloadBytes: 10_000, resultStorage: .directory(directory.path))
            let calls = Counter()
            let expensive = FlowTask("expensive-rows", cache: .inputs + .taskIdentity) { (n: Int) -> [Int] in
                calls.increment()
                return Array(0..<(n * 10_000))
            }
            let flow = Flow("large-task") { (n: Int) -> Int in try await expensive(n).count }
            #expect(try await flow.run(2, engine: engine).get() == 20_000)
            #expect(try await flow.run(2, engine: engine).get() == 20_000)  // a cache hit: the value comes from storage
            #expect(calls.count == 1)
            #expect(try await t.column("SELECT state_name FROM pgflow.task_run_history ORDER BY created_at") == ["Completed", "Cached"])
            #expect(try await t.column("SELECT (value ? '$pgflow_result')::text FROM pgflow.task_run_cache") == ["true"])
        }
    }

    @Test func storingResultsInS3IsRefusedAsNotSupportedYet() async throws {
        try await withSDK { (t) async throws in
            try await t.engine.pool.withConnection { try PGFlowClient.saveBlock("s3-bucket/archive", dataJSON: #"{"bucket": "results"}"#, on: $0) }
            let engine = PGFlowEngine(pool: t.engine.pool, maxPayloadBytes: 1_000, resultStorage: .block("s3-bucket/archive"))
            let result = try await Flow("s3-result") { (n: Int) -> String in String(repeating: "x", count: 5_000) }.run(1, engine: engine)
            #expect(result.stateName == "Failed")
            #expect("\(result.error!)".contains("storing results in S3 (block s3-bucket/archive) is not supported yet"))
        }
    }

    @Test func aFlowPausedForInputRefusesBadInputAndContinuesWithGoodInput() async throws {
        try await withSDK { (t) async throws in
            let flow = Flow("approval-input") { (n: Int) -> String in
                let approval = try await pause(waitingFor: Approval.self, timeout: .seconds(600))
                return "\(approval.approved) \(approval.note ?? "-") \(n)"
            }
            let engine = t.engine
            let run = Task { try await flow.run(7, engine: engine) }
            var paused: UUID?
            #expect(try await eventually(timeout: 60) {
                paused = try await t.column("SELECT id FROM pgflow.flow_runs WHERE state_name = 'Paused'").first?.flatMap(UUID.init(uuidString:))
                return paused != nil
            })
            let id = try #require(paused)
            let error = await #expect(throws: PostgresError.self) {
                try await engine.pool.withConnection { try PGFlowClient.resumeFlowRun(id, inputJSON: #"{"approved": "yes"}"#, on: $0) }
            }
            #expect(error?.sqlState == "22023")
            #expect(error?.message.contains("$.approved: expected boolean, got string") == true)
            #expect(try await t.column("SELECT state_name FROM pgflow.flow_runs WHERE id = $1", [id]) == ["Paused"])
            let resumed = try await engine.pool.withConnection {
                try PGFlowClient.resumeFlowRun(id, inputJSON: #"{"approved": true, "note": "ship it"}"#, on: $0)
            }
            #expect(resumed.status == .accepted)
            let result = try await run.value
            #expect(try result.get() == "true ship it 7")
        }
    }

    @Test func theInputSchemaIsDerivedFromTheType() throws {
        #expect(Approval.inputSchema
                == #"{"properties":{"approved":{"type":"boolean"},"note":{"type":"string"}},"required":["approved"],"type":"object"}"#)
        let review = try JSONSerialization.jsonObject(with: Data(Review.inputSchema.utf8)) as? NSDictionary
        #expect(review == [
            "type": "object", "required": ["approved", "ratio", "score", "tags"],
            "properties": [
                "approved": ["type": "boolean"], "score": ["type": "integer"], "ratio": ["type": "number"],
                "tags": ["type": "array", "items": ["type": "string"]],
                "reviewer": ["type": "object", "required": ["name"], "properties": ["name": ["type": "string"]]],
            ],
        ] as NSDictionary)
    }
}
