// Retries (decided by PostgreSQL, waited out by the SDK) and timeouts, observed in the state history.
import Foundation
import PGFlow
import PGFlowPostgres
import Testing

@Suite struct RetryAndTimeoutTests {
    @Test func aFlakyTaskIsRetriedWithTheDelaysSeenInItsHistory() async throws {
        try await withSDK { (t) async throws in
            let calls = Counter()
            let flaky = FlowTask("flaky", retries: RetryPolicy(count: 3, delay: .list([0.2, 0.4]))) { (n: Int) -> Int in
                if calls.increment() < 3 { throw Boom() }
                return n
            }
            let flow = Flow("retrying") { (n: Int) -> Int in try await flaky(n) }
            #expect(try await flow(5) == 5)
            #expect(calls.count == 3)

            let task = try #require(try await t.rows("SELECT id, run_count, state_name FROM pgflow.task_runs").first)
            #expect(task[1] == "3")
            #expect(task[2] == "Completed")
            #expect(try await t.taskStates(task[0]!) == [
                "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying", "Completed",
            ])
            // each Retrying starts no earlier than the AwaitingRetry before it scheduled it: 0.2 s, then 0.4 s
            let gaps = try await t.rows(
                """
                SELECT extract(epoch FROM scheduled_time - "timestamp"),
                       extract(epoch FROM (SELECT r."timestamp" FROM pgflow.task_run_states r
                                            WHERE r.task_run_id = s.task_run_id AND r.id > s.id ORDER BY r.id LIMIT 1) - scheduled_time)
                  FROM pgflow.task_run_states s WHERE task_run_id = $1::uuid AND state_name = 'AwaitingRetry' ORDER BY id
                """, [task[0]])
            let delays = gaps.map { Double($0[0]!)! }
            #expect(abs(delays[0] - 0.2) < 0.001 && abs(delays[1] - 0.4) < 0.001)
            #expect(gaps.allSatisfy { Double($0[1]!)! >= 0 })
        }
    }

    @Test func exponentialBackoffWithACapIsStoredAsItsCappedDelays() async throws {
        try await withSDK { (t) async throws in
            let policy = RetryPolicy(count: 4, delay: .exponential(base: 0.1, cap: 0.25), jitter: 0.5)
            let once = FlowTask("once", retries: policy) { (n: Int) in n }
            let flow = Flow("capped") { (n: Int) -> Int in try await once(n) }
            _ = try await flow(1)
            let row = try #require(try await t.rows("SELECT retries, retry_backoff, retry_delays::text, retry_jitter FROM pgflow.task_runs").first)
            #expect(row == ["4", "list", "{0.1,0.2,0.25,0.25}", "0.5"])
        }
    }

    @Test func theRetryConditionCanRefuseARetry() async throws {
        try await withSDK { (t) async throws in
            struct Permanent: Error {}
            let calls = Counter()
            let task = FlowTask("picky", retries: RetryPolicy(count: 3, retryIf: { !($0 is Permanent) })) { (n: Int) -> Int in
                calls.increment()
                throw Permanent()
            }
            let flow = Flow("refusing") { (n: Int) -> Int in try await task(n) }
            let result = try await flow.run(1)
            #expect(result.stateName == "Failed")
            #expect(calls.count == 1)
            let id = try #require(try await t.column("SELECT id FROM pgflow.task_runs").first ?? nil)
            #expect(try await t.taskStates(id) == ["Pending", "Running", "Failed"])
            let message = try await t.column("SELECT state_message FROM pgflow.task_runs")
            #expect(message.first??.contains("not retried: the retry condition refused") == true)
        }
    }

    @Test func theRetryConditionCanRefuseAFlowRetry() async throws {
        try await withSDK { (t) async throws in
            struct Permanent: Error {}
            let calls = Counter()
            let flow = Flow("refusing-flow", retries: RetryPolicy(count: 2, retryIf: { !($0 is Permanent) })) { (n: Int) -> Int in
                calls.increment()
                throw Permanent()
            }
            let result = try await flow.run(1)
            #expect(result.stateName == "Failed")
            #expect(calls.count == 1)
            #expect(try await t.flowStates(result.flowRunID) == ["Pending", "Running", "Failed"])
            let message = try await t.column("SELECT state_message FROM pgflow.flow_runs")
            #expect(message.first??.contains("not retried: the retry condition refused") == true)
        }
    }

    @Test func taskStatesCarryTheTimeTheyHappened() async throws {
        try await withSDK { (t) async throws in
            let slow = FlowTask("slow") { (n: Int) -> Int in
                try await Task.sleep(for: .milliseconds(300))
                return n
            }
            let flow = Flow("timed") { (n: Int) -> Int in
                let first = slow.submit(n)
                return try await slow(n) + first.wait()
            }
            let before = Date()
            #expect(try await flow(2) == 4)
            let after = Date()
            let rows = try await t.rows(
                """
                SELECT extract(epoch FROM total_run_time), extract(epoch FROM end_time - start_time),
                       extract(epoch FROM start_time), extract(epoch FROM end_time)
                  FROM pgflow.task_runs
                """)
            #expect(rows.count == 2)
            for row in rows {
                let (runTime, span) = (Double(row[0]!)!, Double(row[1]!)!)
                let (start, end) = (Double(row[2]!)!, Double(row[3]!)!)
                #expect(runTime >= 0.3 && abs(runTime - span) < 0.000_01)
                #expect(start >= before.timeIntervalSince1970 - 0.001 && end <= after.timeIntervalSince1970 + 0.001)
            }
            // every task state is at or after the one before it
            #expect(try await t.column(
                """
                SELECT bool_and(s."timestamp" >= coalesce((SELECT max(p."timestamp") FROM pgflow.task_run_states p
                                                            WHERE p.task_run_id = s.task_run_id AND p.id < s.id), '-infinity'))::text
                  FROM pgflow.task_run_states s
                """) == ["true"])
        }
    }

    @Test func aRetriedFlowReusesTheTaskRunsItsFirstAttemptCompleted() async throws {
        try await withSDK { (t) async throws in
            let expensive = Counter(), attempts = Counter()
            let step = FlowTask("step") { (n: Int) -> Int in expensive.increment(); return n + 1 }
            let flow = Flow("second-time-lucky", retries: RetryPolicy(count: 1, delay: .fixed(0.1))) { (n: Int) -> Int in
                let x = try await step(n)
                if attempts.increment() == 1 { throw Boom() }
                return x
            }
            let result = try await flow.run(1)
            #expect(try result.get() == 2)
            #expect(result.runCount == 2)
            #expect(expensive.count == 1)
            #expect(try await t.flowStates(result.flowRunID) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"])
            #expect(try await t.column("SELECT count(*) FROM pgflow.task_runs") == ["1"])
        }
    }

    @Test func aTaskPastItsTimeoutIsCancelledAndTimedOut() async throws {
        try await withSDK { (t) async throws in
            let cancelled = Counter()
            let slow = FlowTask("slow", timeout: .milliseconds(200)) { (n: Int) -> Int in
                do { try await Task.sleep(for: .seconds(300)) } catch { cancelled.increment(); throw error }
                return n
            }
            let flow = Flow("impatient") { (n: Int) -> Int in try await slow(n) }
            let result = try await flow.run(1)
            #expect(cancelled.count == 1)  // the 300 s sleep was cancelled, not waited out
            #expect(result.stateName == "Failed")
            #expect((result.error as? FlowRunError).map { "\($0)" }?.contains("timed out after 0.2 s") == true)
            let task = try #require(try await t.rows("SELECT state_type::text, state_name, state_message FROM pgflow.task_runs").first)
            #expect(task[0] == "FAILED")
            #expect(task[1] == "TimedOut")
            #expect(task[2] == "exceeded its timeout of 0.2 s; the task was cancelled")
        }
    }

    @Test func aFlowPastItsTimeoutIsTimedOut() async throws {
        try await withSDK { (t) async throws in
            let flow = Flow("too-long", timeout: .milliseconds(200)) { (n: Int) -> Int in
                try await Task.sleep(for: .seconds(30))
                return n
            }
            let result = try await flow.run(1)
            #expect(result.stateName == "TimedOut")
            #expect(try await t.column("SELECT state_message FROM pgflow.flow_runs") == ["exceeded its timeout of 0.2 s; the flow was cancelled"])
        }
    }
}
