// The pool (size bound, reconnects) and LISTEN/NOTIFY, against a real PostgreSQL.
import Foundation
import PGFlowTestSupport
import Testing
@testable import PGFlowPostgres

@Suite struct PoolAndListenerTests {
    @Test func poolNeverExceedsItsMaximum() async throws {
        try await TestDatabase.with(schema: false) { db in
            let pool = PostgresPool(configuration: db.configuration, maxConnections: 3)
            let sessions = try await withThrowingTaskGroup(of: Int32.self) { group in
                for _ in 0..<24 {
                    group.addTask {
                        try await pool.withConnection { c in
                            try c.query("SELECT pg_sleep(0.02)")
                            return c.backendPID
                        }
                    }
                }
                var pids = Set<Int32>()
                for try await pid in group { pids.insert(pid) }
                return pids
            }
            #expect(sessions.count == 3)
            #expect(pool.statistics.highWater == 3)
            let serverSide = try await pool.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgflow-tests'"
            ).scalar(Int.self)
            #expect(serverSide <= 3)
            pool.close()
        }
    }

    @Test func poolReconnectsAfterTheBackendIsTerminated() async throws {
        try await TestDatabase.with(schema: false) { db in
            let pool = PostgresPool(configuration: db.configuration, maxConnections: 1)
            let before = try await pool.withConnection { $0.backendPID }
            let admin = try db.connect()
            #expect(try admin.query("SELECT pg_terminate_backend($1)", [before]).scalar(Bool.self))
            // Wait until the server has really ended that session.
            while try admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", [before]).scalar(Int.self) > 0 {
                try await Task.sleep(for: .milliseconds(5))
            }
            let after = try await pool.withConnection { c in (c.backendPID, try c.query("SELECT 41 + 1").scalar(Int.self)) }
            #expect(after.0 != before)
            #expect(after.1 == 42)
        }
    }

    /// Delivery, order and payloads; how fast a NOTIFY wakes a listener is measured by
    /// `scripts/bench-driver.sh` (no test asserts a duration).
    @Test func notifyFromAnotherConnectionIsDeliveredInOrder() async throws {
        try await TestDatabase.with(schema: false) { db in
            let events = PostgresListener.listen(configuration: db.configuration, channels: ["pgflow_test"])
            var iterator = events.makeAsyncIterator()
            #expect(await iterator.next() == .listening)
            let sender = try db.connect()
            for n in 0..<5 {
                try sender.query("SELECT pg_notify($1, $2)", ["pgflow_test", "payload \(n) ü"])
                let event = await iterator.next()
                guard case .notification(let channel, let payload, let pid)? = event else {
                    Issue.record("expected a notification, got \(String(describing: event))")
                    return
                }
                #expect(channel == "pgflow_test" && payload == "payload \(n) ü" && pid == sender.backendPID)
            }
        }
    }

    @Test func listenerComesBackAfterItsBackendIsTerminated() async throws {
        try await TestDatabase.with(schema: false) { db in
            let events = PostgresListener.listen(configuration: db.configuration, channels: ["again"])
            var iterator = events.makeAsyncIterator()
            #expect(await iterator.next() == .listening)
            let admin = try db.connect()
            try admin.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            #expect(await iterator.next() == .listening)
            try admin.query("SELECT pg_notify($1, $2)", ["again", "after"])
            guard case .notification(_, let payload, _)? = await iterator.next() else {
                Issue.record("no notification after reconnect")
                return
            }
            #expect(payload == "after")
        }
    }
}
