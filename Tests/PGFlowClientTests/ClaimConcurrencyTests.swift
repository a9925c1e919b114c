// The claim under contention: many connections racing, every run claimed once, limits never exceeded.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Synchronization
import Testing

/// The most active runs seen in the limited queue and with the limited tag, across all checks.
final class Watch: Sendable {
    let worst = Mutex((queue: 0, tag: 0, checks: 0))
    let done = Atomic<Bool>(false)

    func record(queue: Int, tag: Int) {
        worst.withLock { $0 = (max($0.queue, queue), max($0.tag, tag), $0.checks + 1) }
    }
}

@Suite struct ClaimConcurrencyTests {
    @Test func eightClaimersTakeTenThousandRunsExactlyOnce() async throws {
        try await TestDatabase.with { db in
            let setup = try db.connect()
            try setup.query("SELECT pgflow.create_deployment('race', 'noop', 'true')")
            #expect(try setup.query("SELECT count(*) FROM pgflow.run_deployments('race/noop', array_fill('{}'::jsonb, ARRAY[10000]))").scalar(Int.self) == 10_000)
            let pool = PostgresPool(configuration: db.configuration, maxConnections: 8)
            let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
                for n in 0..<8 {
                    group.addTask {
                        try await pool.withConnection { c in
                            let agent = try c.query("SELECT pgflow.register_agent($1, '{default}')", ["claimer-\(n)"]).scalar(UUID.self)
                            var mine: [String] = []
                            while true {
                                let batch = try c.query("SELECT flow_run_id::text FROM pgflow.claim_flow_runs($1, NULL, $2)", [agent, 1 + n * 7])
                                if batch.rows.isEmpty { return mine }
                                mine += try batch.rows.map { try $0.decode(String.self, at: 0) }
                            }
                        }
                    }
                }
                var all: [[String]] = []
                for try await ids in group { all.append(ids) }
                return all
            }
            let flat = claimed.flatMap { $0 }
            #expect(flat.count == 10_000)
            #expect(Set(flat).count == 10_000)
            #expect(claimed.filter { !$0.isEmpty }.count >= 2, "the claimers really raced: \(claimed.map(\.count))")
            // The history agrees: each run entered Pending exactly once, and the queue is empty.
            #expect(try setup.query("""
                SELECT count(*) FROM (SELECT flow_run_id FROM pgflow.flow_run_states WHERE state_type = 'PENDING'
                                       GROUP BY flow_run_id HAVING count(*) = 1) once
                """).scalar(Int.self) == 10_000)
            #expect(try setup.query("SELECT count(*) FROM pgflow.run_queue").scalar(Int.self) == 0)
        }
    }

    @Test func queueAndTagLimitsHoldWhileEightClaimersRace() async throws {
        try await TestDatabase.with { db in
            let setup = try db.connect()
            try setup.query("SELECT pgflow.create_work_queue('limited', p_concurrency_limit => 3)")
            try setup.query("SELECT pgflow.create_concurrency_limit('tag:etl', 2)")
            try setup.query("SELECT pgflow.create_deployment('lim', 'tagged', 'true', p_work_queue => 'limited', p_tags => '{etl}')")
            try setup.query("SELECT pgflow.create_deployment('lim', 'plain', 'true', p_work_queue => 'limited')")
            try setup.query("SELECT count(*) FROM pgflow.run_deployments('lim/tagged', array_fill('{}'::jsonb, ARRAY[150]))")
            try setup.query("SELECT count(*) FROM pgflow.run_deployments('lim/plain', array_fill('{}'::jsonb, ARRAY[150]))")
            let checkSQL = """
                SELECT (SELECT count(*) FROM pgflow.flow_runs r JOIN pgflow.work_queues q ON q.id = r.work_queue_id
                         WHERE q.name = 'limited' AND r.state_type IN ('PENDING', 'RUNNING')),
                       (SELECT count(*) FROM pgflow.flow_runs r
                         WHERE 'etl' = ANY (r.tags) AND r.state_type IN ('PENDING', 'RUNNING'))
                """
            let watch = Watch()
            let pool = PostgresPool(configuration: db.configuration, maxConnections: 9)
            try await withThrowingTaskGroup(of: Void.self) { group in
                // A watcher checks the limits continuously, on its own connection.
                group.addTask {
                    try await pool.withConnection { c in
                        while !watch.done.load(ordering: .relaxed) {
                            let row = try c.query(checkSQL).rows[0]
                            let q = try row.decode(Int.self, at: 0), t = try row.decode(Int.self, at: 1)
                            watch.record(queue: q, tag: t)
                        }
                    }
                }
                var claimers: [Task<Int, any Error>] = []
                for n in 0..<8 {
                    claimers.append(Task {
                        try await pool.withConnection { c in
                            let agent = try c.query("SELECT pgflow.register_agent($1, '{limited}')", ["lim-\(n)"]).scalar(UUID.self)
                            var finished = 0, idle = 0
                            while idle < 50 {
                                let batch = try c.query("SELECT flow_run_id FROM pgflow.claim_flow_runs($1, NULL, 2, true)", [agent])
                                // Every claimer checks too, right after each claim (its own commit is visible).
                                let row = try c.query(checkSQL).rows[0]
                                let q = try row.decode(Int.self, at: 0), t = try row.decode(Int.self, at: 1)
                                watch.record(queue: q, tag: t)
                                if batch.rows.isEmpty {
                                    idle += 1
                                    if try c.query("SELECT count(*) FROM pgflow.flow_runs WHERE NOT pgflow.is_terminal(state_type)").scalar(Int.self) == 0 { break }
                                    continue
                                }
                                idle = 0
                                for r in batch.rows {
                                    let result = try c.query("SELECT status FROM pgflow.set_flow_run_state($1, 'COMPLETED', p_agent_id => $2)", [try r.decode(UUID.self, at: 0), agent])
                                    #expect(try result.scalar(String.self) == "ACCEPTED")
                                    finished += 1
                                }
                            }
                            return finished
                        }
                    })
                }
                var total = 0
                for t in claimers { total += try await t.value }
                watch.done.store(true, ordering: .relaxed)
                try await group.waitForAll()
                #expect(total == 300)
            }
            let w = watch.worst.withLock { $0 }
            #expect(w.queue <= 3 && w.tag <= 2, "worst seen: queue \(w.queue), tag \(w.tag)")
            #expect(w.queue == 3, "the queue limit was reached, so the check means something")
            #expect(w.checks > 300)
            #expect(try setup.query("SELECT count(*) FROM pgflow.flow_runs WHERE state_type = 'COMPLETED'").scalar(Int.self) == 300)
            #expect(try setup.query("SELECT count(*) FROM pgflow.concurrency_slots").scalar(Int.self) == 0, "every slot was released")
        }
    }

    @Test func anExpiredLeaseLosesItsSlotToTheNextClaimer() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_concurrency_limit('external-api', 1)")
            let t0 = Date(timeIntervalSince1970: 1_800_000_000)
            let first = try c.query("SELECT pgflow.acquire_concurrency_slots('{external-api}', 1, interval '10 seconds', p_now => $1)", [t0]).scalar(UUID?.self)
            #expect(first != nil)
            let blocked = try c.query("SELECT pgflow.acquire_concurrency_slots('{external-api}', 1, interval '10 seconds', p_now => $1)", [t0.addingTimeInterval(9)]).scalar(UUID?.self)
            #expect(blocked == nil, "the lease still holds at 9 s")
            let next = try c.query("SELECT pgflow.acquire_concurrency_slots('{external-api}', 1, interval '10 seconds', p_now => $1)", [t0.addingTimeInterval(11)]).scalar(UUID?.self)
            #expect(next != nil && next != first, "the holder's lease expired at 10 s")
            #expect(try c.query("SELECT pgflow.renew_concurrency_lease($1, interval '10 seconds', p_now => $2)", [first, t0.addingTimeInterval(12)]).scalar(Bool.self) == false,
                    "the dead holder cannot renew a lease it lost")
        }
    }
}
