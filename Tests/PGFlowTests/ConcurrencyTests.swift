// Futures, map with bounded parallelism, asCompleted, and global concurrency limits with leases.
import Foundation
import PGFlow
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct ConcurrencyTests {
    @Test func submittedTasksRunConcurrentlyAndAreAllRecorded() async throws {
        try await withSDK { (t) async throws in
            let inFlight = Counter()
            let work = FlowTask("work") { (n: Int) -> Int in
                inFlight.enter()
                defer { inFlight.decrement() }
                try await Task.sleep(for: .milliseconds(50))
                return n * n
            }
            let flow = Flow("fan-out") { (n: Int) -> Int in
                let futures = (0..<n).map { work.submit($0) }
                return try await wait(futures).reduce(0, +)
            }
            #expect(try await flow(20) == (0..<20).map { $0 * $0 }.reduce(0, +))
            #expect(inFlight.maximum > 1)
            #expect(try await t.column("SELECT count(*) FROM pgflow.task_runs WHERE state_name = 'Completed'") == ["20"])
            #expect(try await t.column("SELECT count(*) FROM pgflow.task_run_states") == ["60"])
        }
    }

    @Test func mapKeepsOrderAndBoundsParallelism() async throws {
        try await withSDK { (t) async throws in
            let inFlight = Counter()
            let work = FlowTask("bounded") { (n: Int) -> String in
                inFlight.enter()
                defer { inFlight.decrement() }
                try await Task.sleep(for: .milliseconds(20))
                return "v\(n)"
            }
            let flow = Flow("mapped") { (n: Int) -> [String] in try await work.map(Array(0..<n), maxConcurrency: 3) }
            #expect(try await flow(12) == (0..<12).map { "v\($0)" })
            #expect(inFlight.maximum <= 3)
            #expect(inFlight.maximum >= 2)
            #expect(try await t.column("SELECT count(*) FROM pgflow.task_runs") == ["12"])
        }
    }

    /// The tasks finish in the order 2nd, 3rd, 1st, each only after asCompleted has yielded the one
    /// before it (no sleeps racing each other): asCompleted must follow completion, not submission.
    /// If it waited for the first submitted task, that task would give up after 60 s and the order
    /// would come out wrong.
    @Test func asCompletedYieldsEveryResultAsItFinishes() async throws {
        try await withSDK { (t) async throws in
            let seen = Counter()
            let work = FlowTask("finish-after") { (previous: Int) -> Int in
                _ = await eventually(timeout: 60) { seen.count >= previous }
                return previous
            }
            let flow = Flow("completion-order") { (n: Int) -> [Int] in
                var order: [Int] = []
                for await result in asCompleted([2, 0, 1].map { work.submit($0) }) {
                    order.append(try result.get())
                    seen.increment()
                }
                return order
            }
            #expect(try await flow(0) == [0, 1, 2])
        }
    }

    @Test func aGlobalLimitAdmitsOneHolderAtATimeAndReleasesItsSlots() async throws {
        try await withSDK { (t) async throws in
            _ = try await t.engine.pool.query("SELECT pgflow.create_concurrency_limit('external-api', 1)")
            let inside = Counter()
            let call = FlowTask("call-api") { (n: Int) -> Int in
                try await concurrency("external-api", occupy: 1) {
                    inside.enter()
                    defer { inside.decrement() }
                    try await Task.sleep(for: .milliseconds(30))
                    return n
                }
            }
            let flow = Flow("limited") { (n: Int) -> Int in try await call.map(Array(0..<n)).reduce(0, +) }
            async let a = flow(4)
            async let b = flow(4)
            #expect(try await a + b == 12)
            #expect(inside.maximum == 1)
            #expect(try await t.column("SELECT slots_in_use FROM pgflow.concurrency_status WHERE name = 'external-api'") == ["0"])

            let failing = FlowTask("fails-inside") { (n: Int) -> Int in
                try await concurrency("external-api") { throw Boom() }
            }
            _ = try await Flow("limited-failing") { (n: Int) -> Int in try await failing(n) }.run(1)
            #expect(try await t.column("SELECT count(*) FROM pgflow.concurrency_slots") == ["0"])
        }
    }

    @Test func aLeaseOfADeadHolderExpiresByItself() async throws {
        try await withSDK { (t) async throws in
            _ = try await t.engine.pool.query("SELECT pgflow.create_concurrency_limit('db', 1)")
            // A holder took the slot an hour ago with a 6 s lease and died without releasing it (time is
            // injected through p_now: no test waits for a lease to run out).
            let taken = "SELECT pgflow.acquire_concurrency_slots('{db}', 1, interval '6 seconds', NULL, $1::timestamptz)"
            let hourAgo = Date().addingTimeInterval(-3600)
            #expect(try await t.engine.pool.query(taken, [hourAgo]).scalar(UUID?.self) != nil)
            // While its lease ran, the limit was full.
            #expect(try await t.engine.pool.query(taken, [hourAgo.addingTimeInterval(5)]).scalar(UUID?.self) == nil)
            // Now the lease has expired: the slot is free without anyone releasing it.
            let value = try await concurrency("db", timeout: .zero) { 7 }
            #expect(value == 7)
        }
    }
}
