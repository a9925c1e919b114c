// The result cache lives in PostgreSQL: hits across separate flow runs are recorded as Cached.
import Foundation
import PGFlow
import PGFlowPostgres
import Testing

@Suite struct CacheTests {
    @Test func aCachedTaskHitsAcrossTwoSeparateFlowRuns() async throws {
        try await withSDK { (t) async throws in
            let calls = Counter()
            let expensive = FlowTask("expensive", cache: .inputs + .taskIdentity) { (n: Int) -> Int in
                calls.increment()
                return n * 100
            }
            let flow = Flow("cached") { (n: Int) -> Int in try await expensive(n) }
            #expect(try await flow(3) == 300)
            #expect(try await flow(3) == 300)
            #expect(calls.count == 1)
            #expect(try await flow(4) == 400)
            #expect(calls.count == 2)

            let runs = try await t.rows(
                "SELECT t.state_name, t.result::text, t.cache_key FROM pgflow.task_run_history t ORDER BY t.created_at")
            #expect(runs.map { $0[0] } == ["Completed", "Cached", "Completed"])
            #expect(runs.map { $0[1] } == ["300", "300", "400"])
            #expect(runs[0][2] == runs[1][2] && runs[0][2] != runs[2][2])
            #expect(try await t.column("SELECT count(DISTINCT flow_run_id) FROM pgflow.task_runs") == ["3"])
        }
    }

    @Test func flowParametersAreAPartOfTheKeyWhenAsked() async throws {
        try await withSDK { (t) async throws in
            struct P: Codable, Sendable { var region: String }
            let calls = Counter()
            let lookup = FlowTask("lookup", cache: .inputs + .flowParameters) { (n: Int) -> Int in calls.increment(); return n }
            let flow = Flow("regional") { (p: P) -> Int in try await lookup(1) }
            _ = try await flow(P(region: "eu"))
            _ = try await flow(P(region: "us"))
            _ = try await flow(P(region: "eu"))
            #expect(calls.count == 2)
            #expect(try await t.column("SELECT state_name FROM pgflow.task_runs ORDER BY created_at") == ["Completed", "Completed", "Cached"])
        }
    }

    @Test func anExpiredEntryIsNotUsed() async throws {
        try await withSDK { (t) async throws in
            let calls = Counter()
            let fleeting = FlowTask("fleeting", cache: CachePolicy.inputs.expiring(after: .zero)) { (n: Int) -> Int in
                calls.increment()
                return n
            }
            let flow = Flow("expiring") { (n: Int) -> Int in try await fleeting(n) }
            _ = try await flow(1)
            _ = try await flow(1)
            #expect(calls.count == 2)
            #expect(try await t.column("SELECT cache_expiration::text FROM pgflow.task_runs LIMIT 1") == ["00:00:00"])
        }
    }

    @Test func aRefreshingCallRecomputesAndReplacesTheEntry() async throws {
        try await withSDK { (t) async throws in
            let calls = Counter()
            let compute = { @Sendable (n: Int) -> Int in n * 100 + calls.increment() }
            let policy = CachePolicy.inputs + .taskIdentity
            let normal = FlowTask("price", cache: policy, compute)
            let refreshing = FlowTask("price", cache: policy.refreshing(), compute)
            let flow = Flow("pricing") { (refresh: Bool) -> Int in try await (refresh ? refreshing : normal)(7) }
            #expect(try await flow(false) == 701)
            #expect(try await flow(false) == 701)  // a hit
            #expect(try await flow(true) == 702)   // recomputed although the entry is valid
            #expect(try await flow(false) == 702)  // the refreshed entry
            #expect(calls.count == 2)

            #expect(try await t.column("SELECT state_name FROM pgflow.task_runs ORDER BY created_at")
                    == ["Completed", "Cached", "Completed", "Cached"])
            #expect(try await t.column("SELECT cache_refresh::text FROM pgflow.task_runs ORDER BY created_at")
                    == ["false", "false", "true", "false"])
            let entry = try await t.rows(
                "SELECT c.value::text, (c.task_run_id = (SELECT id FROM pgflow.task_runs WHERE cache_refresh))::text FROM pgflow.task_run_cache c")
            #expect(entry == [["702", "true"]])
        }
    }
}
