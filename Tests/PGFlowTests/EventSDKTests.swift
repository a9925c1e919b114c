// emitEvent from the SDK: inside a flow the event names the run as a related resource; the engine's
// own names are refused.
import Foundation
@testable import PGFlow
import PGFlowClient
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct EventSDKTests {
    @Test func aFlowEmitsAnEventRelatedToItsRun() async throws {
        try await withSDK { (t) async throws in
            let flow = Flow("sensing") { (n: Int) -> Int in
                try await emitEvent("acme.file.arrived", resource: ["id": "s3://raw/\(n).csv", "kind": "file"], payload: ["rows": n])
                return n
            }
            let run = try await flow.run(7)
            #expect(try await t.rows("""
                SELECT resource_id, payload::text, related -> 0 ->> 'id' FROM pgflow.events WHERE event = 'acme.file.arrived'
                """) == [["s3://raw/7.csv", #"{"rows": 7}"#, run.flowRunID.uuidString.lowercased()]])
            await #expect(throws: PostgresError.self) { try await emitEvent("pgflow.flow-run.Completed") }
        }
    }
}
