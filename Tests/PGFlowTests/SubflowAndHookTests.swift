// Subflows are child runs linked to a task run of the parent; hooks run exactly once per outcome.
import Foundation
import PGFlow
import PGFlowPostgres
import Testing

@Suite struct SubflowAndHookTests {
    @Test func aFlowCalledInAFlowIsAChildRunOfAParentTaskRun() async throws {
        try await withSDK { (t) async throws in
            let inc = FlowTask("inc") { (n: Int) in n + 1 }
            let child = Flow("child") { (n: Int) -> Int in try await inc(n) }
            let parent = Flow("parent") { (n: Int) -> Int in try await child(n) + child(n + 10) }
            #expect(try await parent(1) == 2 + 12)

            let parentRun = try #require(try await t.column("SELECT id FROM pgflow.flow_run_history WHERE flow = 'parent'").first ?? nil)
            let links = try await t.rows(
                """
                SELECT t.task_key, t.state_name, c.state_name, (SELECT count(*) FROM pgflow.task_runs x WHERE x.flow_run_id = c.id)
                  FROM pgflow.task_runs t JOIN pgflow.flow_runs c ON c.parent_task_run_id = t.id
                 WHERE t.flow_run_id = $1::uuid ORDER BY t.dynamic_key
                """, [parentRun])
            #expect(links == [["subflow:child", "Completed", "Completed", "1"], ["subflow:child", "Completed", "Completed", "1"]])
        }
    }

    @Test func flowHooksRunOncePerOutcome() async throws {
        try await withSDK { (t) async throws in
            let running = Counter(), completed = Counter(), failed = Counter()
            var flow = Flow("hooked", retries: RetryPolicy(count: 2)) { (fail: Bool) -> Int in
                if fail { throw Boom() }
                return 1
            }
            flow.onRunning = [{ _ in running.increment() }]
            flow.onCompletion = [{ _ in completed.increment() }]
            flow.onFailure = [{ info in
                #expect(info.stateName == "Failed" && info.runCount == 3)
                failed.increment()
            }]
            _ = try await flow.run(false)
            #expect((running.count, completed.count, failed.count) == (1, 1, 0))
            _ = try await flow.run(true)
            #expect((running.count, completed.count, failed.count) == (4, 1, 1))
        }
    }

    @Test func cancellationAndCrashHooksRunOnce() async throws {
        try await withSDK { (t) async throws in
            let cancelled = Counter(), crashed = Counter(), completed = Counter()
            let started = AsyncStream<Void>.makeStream()
            let sleeper = FlowTask("sleeper") { (n: Int) -> Int in
                started.continuation.yield()
                try await Task.sleep(for: .seconds(60))
                return n
            }
            let cancellable = Flow("cancellable", onCancellation: [{ _ in cancelled.increment() }]) { (n: Int) -> Int in
                try await sleeper(n)
            }
            let engine = t.engine
            let run = Task { try await cancellable.run(1, engine: engine) }
            for await _ in started.stream { break }
            run.cancel()
            let result = try await run.value
            #expect(result.stateName == "Cancelled")
            #expect(cancelled.count == 1)
            #expect(try await t.column("SELECT state_name FROM pgflow.task_runs") == ["Cancelled"])

            // the reaper (here: SQL) marks the run Crashed while it runs; the run's end finds it so
            let crashing = Flow("crashing", onCompletion: [{ _ in completed.increment() }], onCrashed: [{ _ in crashed.increment() }]) {
                (n: Int) -> Int in
                let id = FlowContext.current!.flowRunID
                _ = try await engine.pool.query("SELECT pgflow.set_flow_run_state($1, 'CRASHED', p_message => 'agent lost')", [id])
                return n
            }
            let crashedRun = try await crashing.run(1)
            #expect(crashedRun.stateName == "Crashed")
            #expect((crashed.count, completed.count) == (1, 0))
        }
    }

    @Test func taskHooksRunOnceAfterRetries() async throws {
        try await withSDK { (t) async throws in
            let completions = Counter(), failures = Counter(), calls = Counter()
            let ok = FlowTask("ok", onCompletion: [{ info, output in
                #expect(info.stateName == "Completed" && output == 2)
                completions.increment()
            }]) { (n: Int) in n * 2 }
            let bad = FlowTask("bad", retries: RetryPolicy(count: 2), onFailure: [{ info, _ in
                #expect(info.stateName == "Failed")
                failures.increment()
            }]) { (n: Int) -> Int in
                calls.increment()
                throw Boom()
            }
            let flow = Flow("task-hooks") { (n: Int) -> Int in
                _ = try await ok(n)
                return try await bad(n)
            }
            _ = try await flow.run(1)
            #expect((completions.count, failures.count, calls.count) == (1, 1, 3))
        }
    }
}
