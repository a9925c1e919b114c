// Submitted tasks recorded in group commits (issue 17): every task run with its three states and its
// result, a failure inside a batch kept to its own task run, and a flow process killed mid-batch.
import Foundation
import PGFlow
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct TaskBatchingTests {
    @Test func athousandSubmittedTasksAreAllRecordedWithThreeStatesAndAResult() async throws {
        try await withSDK { (t) async throws in
            let double = FlowTask("double") { (n: Int) -> Int in 2 * n }
            let flow = Flow("fan-out") { (n: Int) -> Int in
                let futures = (0..<n).map { double.submit($0) }
                return try await wait(futures).reduce(0, +)
            }
            let result = try await flow.run(1_000)
            #expect(try result.get() == 999_000)
            let counts = try #require(try await t.rows("SELECT * FROM pgflow.flow_run_task_counts($1)", [result.flowRunID]).first)
            #expect(counts == ["1000", "1000", "3000", "1000"])
            // each run: Pending, Running, Completed in order and in time, its own result, its run time
            let odd = try await t.rows(
                """
                SELECT t.inputs::text, r.value::text,
                       (SELECT string_agg(s.state_name, ' ' ORDER BY s.id) FROM pgflow.task_run_states s WHERE s.task_run_id = t.id),
                       (SELECT bool_and(s."timestamp" >= coalesce(lag, s."timestamp"))
                          FROM (SELECT s."timestamp", lag(s."timestamp") OVER (ORDER BY s.id) FROM pgflow.task_run_states s
                                 WHERE s.task_run_id = t.id) s),
                       t.run_count, t.start_time <= t.end_time AND t.total_run_time = t.end_time - t.start_time
                  FROM pgflow.task_runs t LEFT JOIN pgflow.results r ON r.run_id = t.id
                 WHERE t.flow_run_id = $1
                """, [result.flowRunID]).filter { row in
                row[0].flatMap(Int.init).map { row[1] != String(2 * $0) } ?? true
                    || row[2] != "Pending Running Completed" || row[3] != "t" || row[4] != "1" || row[5] != "t"
            }
            #expect(odd.isEmpty, "task runs recorded otherwise: \(odd.prefix(5))")
        }
    }

    @Test func aTaskThatFailsInABatchKeepsItsOwnFailedStateAndRetries() async throws {
        try await withSDK { (t) async throws in
            let flakyCalls = Counter()
            let work = FlowTask("work", retries: RetryPolicy(count: 1, delay: .fixed(0.05))) { (n: Int) -> Int in
                if n == 57 && flakyCalls.increment() == 1 { throw Boom() }  // fails once, then succeeds
                if n == 91 { throw Boom() }  // fails every time: its one retry too
                return n
            }
            let flow = Flow("batch-with-failures") { (n: Int) -> [String] in
                let futures = (0..<n).map { work.submit($0) }
                var outcomes: [String] = []
                for future in futures {
                    switch await future.result() {
                    case .success(let v): outcomes.append(String(v))
                    case .failure: outcomes.append("failed")
                    }
                }
                return outcomes
            }
            let outcomes = try await flow(200)
            #expect(outcomes[57] == "57")
            #expect(outcomes[91] == "failed")
            #expect(outcomes.filter { $0 == "failed" }.count == 1)

            func history(_ n: Int) async throws -> String {
                try await t.column(
                    """
                    SELECT string_agg(s.state_name, ' ' ORDER BY s.id) FROM pgflow.task_runs t
                      JOIN pgflow.task_run_states s ON s.task_run_id = t.id WHERE t.inputs = $1::jsonb
                    """, [String(n)]).first!!
            }
            #expect(try await history(57) == "Pending Running AwaitingRetry Retrying Completed")
            #expect(try await history(91) == "Pending Running AwaitingRetry Retrying Failed")
            let others = try await t.column(
                """
                SELECT count(*) FROM pgflow.task_runs t
                 WHERE t.inputs NOT IN ('57', '91') AND t.state_name = 'Completed' AND t.run_count = 1
                   AND (SELECT string_agg(s.state_name, ' ' ORDER BY s.id) FROM pgflow.task_run_states s WHERE s.task_run_id = t.id)
                       = 'Pending Running Completed'
                   AND EXISTS (SELECT 1 FROM pgflow.results r WHERE r.run_id = t.id AND r.value = t.inputs)
                """)
            #expect(others == ["198"])
            #expect(try await t.column("SELECT count(*) FROM pgflow.results r JOIN pgflow.task_runs t ON t.id = r.run_id WHERE t.inputs = '91'") == ["0"])
        }
    }

    @Test func aFlowProcessKilledMidBatchLeavesNoTaskCompletedWhoseBodyDidNotFinish() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let markers = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-probe-\(UUID()).txt")
            defer { try? FileManager.default.removeItem(at: markers) }
            let probe = try TestProcess("pgflow-sdk-probe", [db.conninfo, markers.path])
            // wait until many task runs completed and ten of those that hang (inputs 0, 100, …) are recorded:
            // the flow cannot end before it is killed
            let enough = try await eventually(timeout: 120) {
                try c.query("SELECT count(*) FROM pgflow.task_runs WHERE state_type = 'COMPLETED'").scalar(Int.self) >= 1_000
                    && c.query("SELECT count(*) FROM pgflow.task_runs WHERE (inputs::text)::int % 100 = 0").scalar(Int.self) >= 10
            }
            #expect(enough, "the probe recorded too few task runs: \(probe.output)")
            probe.signal(SIGKILL)
            #expect(await probe.waitForExit(timeout: 60) != nil)

            let finished = Set(((try? String(contentsOf: markers, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init))
            let completed = try c.query("SELECT inputs::text FROM pgflow.task_runs WHERE state_type = 'COMPLETED'").rows
                .map { row in try row.decode(String.self, at: 0) }
            #expect(completed.count >= 1_000)
            // the hanging ones were recorded while they ran: Running, not Completed
            #expect(try c.query("SELECT count(*) FILTER (WHERE state_name = 'Running') = count(*) FROM pgflow.task_runs WHERE (inputs::text)::int % 100 = 0").scalar(Bool.self))
            let unfinished = completed.filter { !finished.contains($0) }
            #expect(unfinished.isEmpty, "recorded Completed although their bodies did not finish: \(unfinished.prefix(10))")
            // what was written is whole: a Completed run has its three states and its result; any other is Pending or Running
            #expect(try c.query(
                """
                SELECT count(*) FROM pgflow.task_runs t
                 WHERE CASE t.state_name
                       WHEN 'Completed' THEN (SELECT string_agg(s.state_name, ' ' ORDER BY s.id) FROM pgflow.task_run_states s WHERE s.task_run_id = t.id)
                                             IS DISTINCT FROM 'Pending Running Completed'
                                          OR NOT EXISTS (SELECT 1 FROM pgflow.results r WHERE r.run_id = t.id AND r.value = t.inputs)
                       WHEN 'Running' THEN (SELECT string_agg(s.state_name, ' ' ORDER BY s.id) FROM pgflow.task_run_states s WHERE s.task_run_id = t.id)
                                           IS DISTINCT FROM 'Pending Running'
                       ELSE t.state_name <> 'Pending' END
                """).scalar(Int.self) == 0)
        }
    }

    /// A batch whose COMMIT reached PostgreSQL but whose reply was lost is sent again: its task runs
    /// come back by their keys and transition ids, its log lines by their batch id, each written once.
    @Test func aBatchWhoseCommitReplyIsLostIsWrittenOnce() async throws {
        try await TestDatabase.with { database in
            let c = try database.connect()
            let port = try #require(Int(try c.query("SHOW port").scalar(String.self)))
            let user = try c.query("SELECT current_user::text").scalar(String.self)
            let proxy = try TCPProxy(upstreamPort: port)
            defer { proxy.close() }
            let pool = PostgresPool(
                configuration: PostgresConfiguration("host=127.0.0.1 port=\(proxy.port) user=\(user) dbname=\(database.name)", connectTimeout: 2),
                maxConnections: 4)
            defer { pool.close() }
            let engine = PGFlowEngine(pool: pool, maxPayloadBytes: 4_096)
            let step = FlowTask("step") { (n: Int) -> Int in
                runLogger().info("step \(n)")
                return n
            }
            let flow = Flow("lossy") { (n: Int) -> Int in
                proxy.loseNextReply(containing: "COMMIT")  // the recorder's next group commit
                let futures = (0..<n).map { step.submit($0) }
                return try await wait(futures).reduce(0, +)
            }
            let result = try await engine.activate { try await flow.run(50) }
            #expect(try result.get() == 1_225)
            let counts = try c.query(
                """
                SELECT (SELECT count(*) FROM pgflow.task_runs WHERE flow_run_id = $1),
                       (SELECT count(*) FROM pgflow.task_run_states s JOIN pgflow.task_runs t ON t.id = s.task_run_id WHERE t.flow_run_id = $1),
                       (SELECT count(*) FROM pgflow.logs WHERE flow_run_id = $1 AND message LIKE 'step %'),
                       (SELECT count(DISTINCT message) FROM pgflow.logs WHERE flow_run_id = $1 AND message LIKE 'step %')
                """, [result.flowRunID]).rows[0].values
            #expect(counts == ["50", "150", "50", "50"], "task runs, their states, log lines, distinct lines")
        }
    }
}
