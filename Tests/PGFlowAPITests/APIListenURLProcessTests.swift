// The API's live-stream LISTEN connection may have a URL of its own (behind a transaction-mode
// PgBouncer: the pool through PgBouncer, LISTEN straight to PostgreSQL).
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct APIListenURLProcessTests {
    @Test func theStreamListensWithItsOwnURL() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let api = try await APIProcess.start(db, ["--listen-database-url", db.conninfo + " application_name=api-listen"])
            func sessions(_ name: String, listening: Bool) throws -> Int {
                try c.query("""
                    SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = $1 AND (query LIKE 'LISTEN %') = $2
                    """, [name, listening]).scalar(Int.self)
            }
            let listening = try await eventually(timeout: 60) { try sessions("api-listen", listening: true) == 1 }
            #expect(listening, "no LISTEN session with the listen URL:\n\(api.process.output.suffix(2000))")
            #expect(try sessions("api-listen", listening: false) == 0, "only the listener uses the listen URL")
            #expect(try sessions("pgflow-api", listening: true) == 0, "the pool does not listen")
            api.process.signal(SIGTERM)
            #expect(await api.process.waitForExit(timeout: 60) != nil)
        }
    }
}
