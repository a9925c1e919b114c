// PGFlowPostgres against a real PostgreSQL: binding, decoding, errors, transactions, pipelines.
import Foundation
import PGFlowTestSupport
import Testing
@testable import PGFlowPostgres

@Suite struct ConnectionTests {
    struct Payload: Codable, Equatable, Sendable {
        var name: String
        var tags: [String]
        var nested: [String: Int]
    }

    @Test func bindsAndDecodesEveryType() async throws {
        try await TestDatabase.with(schema: false) { db in
            let c = try db.connect()
            let id = UUID()
            let now = Date(timeIntervalSince1970: 1_795_250_233.654321)
            let payload = Payload(name: "ünïcødé ✓ 日本", tags: ["a", "b\"c"], nested: ["x": 1])
            let row = try #require(try c.query(
                "SELECT $1::text, $2::int8, $3::int4, $4::bool, $5::float8, $6::uuid, $7::timestamptz, $8::jsonb, $9::text[], $10::text, $11::int8",
                ["ünïcødé ✓ 日本 🐘", Int.max, Int32.min, true, 3.141592653589793, id, now, PostgresJSON(payload), ["x", "y z", "ü"], nil, Optional<Int>.none]
            ).first)
            #expect(try row.decode(String.self, at: 0) == "ünïcødé ✓ 日本 🐘")
            #expect(try row.decode(Int.self, at: 1) == Int.max)
            #expect(try row.decode(Int32.self, at: 2) == Int32.min)
            #expect(try row.decode(Bool.self, at: 3) == true)
            #expect(try row.decode(Double.self, at: 4) == 3.141592653589793)
            #expect(try row.decode(UUID.self, at: 5) == id)
            #expect(try abs(row.decode(Date.self, at: 6).timeIntervalSince(now)) < 1e-6)
            #expect(try row.decode(PostgresJSON<Payload>.self, at: 7).value == payload)
            #expect(try row.decode([String].self, at: 8) == ["x", "y z", "ü"])
            #expect(try row.decode(String?.self, at: 9) == nil)
            #expect(try row.decode(Int?.self, at: 10) == nil)
            #expect(throws: PostgresError.self) { try row.decode(String.self, at: 9) }
            #expect(throws: PostgresError.self) { try row.decode(Int.self, at: 0) }
        }
    }

    @Test func injectionAttemptsStayData() async throws {
        try await TestDatabase.with(schema: false) { db in
            let c = try db.connect()
            try c.execute(script: "CREATE TABLE t (name text)")
            let evil = ["'); DROP TABLE t; --", "x' OR '1'='1", "$1", "\\'; SELECT pg_sleep(10); --"]
            for e in evil { try c.query("INSERT INTO t VALUES ($1)", [e]) }
            #expect(try c.query("SELECT count(*) FROM t WHERE name = $1", ["x' OR '1'='1"]).scalar(Int.self) == 1)
            #expect(try c.query("SELECT name FROM t ORDER BY name").rows.map { $0[0] } == evil.sorted().map { Optional($0) })
            #expect(throws: PostgresError.self) { try c.query("SELECT $1::text", ["nul\u{0}byte"]) }
            // The same without a prepared statement (for statements run once).
            #expect(try c.queryUnprepared("SELECT count(*) FROM t WHERE name = $1", ["'); DROP TABLE t; --"]).scalar(Int.self) == 1)
        }
    }

    @Test func uniqueViolationCarriesItsSQLState() async throws {
        try await TestDatabase.with(schema: false) { db in
            let c = try db.connect()
            try c.execute(script: "CREATE TABLE u (k text PRIMARY KEY)")
            try c.query("INSERT INTO u VALUES ($1)", ["a"])
            let error = try #require(throws: PostgresError.self) { try c.query("INSERT INTO u VALUES ($1)", ["a"]) }
            #expect(error.sqlState == "23505")
            #expect(error.isUniqueViolation)
            #expect(error.kind == .server)
            #expect(error.detail?.contains("(k)=(a)") == true)
            let raised = try #require(throws: PostgresError.self) {
                try c.execute(script: "DO $$ BEGIN RAISE EXCEPTION 'bad thing' USING ERRCODE = '22023', HINT = 'do better'; END $$")
            }
            #expect(raised.sqlState == "22023" && raised.hint == "do better" && raised.message == "bad thing")
            #expect(raised.description == "bad thing [SQLSTATE 22023] (hint: do better)")
            // The connection is still usable after errors.
            #expect(try c.query("SELECT 1").scalar(Int.self) == 1)
        }
    }

    @Test func transactionRollsBackWhenTheBodyThrows() async throws {
        struct Boom: Error {}
        try await TestDatabase.with(schema: false) { db in
            let pool = PostgresPool(configuration: db.configuration, maxConnections: 2)
            try await pool.query("CREATE TABLE r (n int)")
            await #expect(throws: Boom.self) {
                try await pool.withTransaction { c in
                    try c.query("INSERT INTO r VALUES ($1)", [1])
                    throw Boom()
                }
            }
            _ = try await pool.withTransaction { c in try c.query("INSERT INTO r VALUES ($1)", [2]) }
            #expect(try await pool.query("SELECT array_agg(n)::text FROM r").scalar(String.self) == "{2}")
            #expect(try await pool.withConnection { $0.inTransaction } == false)
        }
    }

    @Test func pipelineReturnsAThousandResultsInOrder() async throws {
        try await TestDatabase.with(schema: false) { db in
            let c = try db.connect()
            let statements = (0..<1000).map { PostgresStatement("SELECT $1::int * 2 AS v, repeat('x', 200) AS pad", [$0]) }
            let results = try c.pipeline(statements)
            #expect(results.count == 1000)
            #expect(try results.enumerated().allSatisfy { n, r in try r.scalar(Int.self) == n * 2 })
            // A failing statement: later ones are skipped and nothing commits.
            try c.execute(script: "CREATE TABLE p (n int PRIMARY KEY)")
            let failing = [
                PostgresStatement("INSERT INTO p VALUES ($1)", [1]),
                PostgresStatement("INSERT INTO p VALUES ($1)", [1]),
                PostgresStatement("INSERT INTO p VALUES ($1)", [2]),
            ]
            let error = try #require(throws: PostgresError.self) { try c.pipeline(failing) }
            #expect(error.sqlState == "23505")
            #expect(try c.query("SELECT count(*) FROM p").scalar(Int.self) == 0)
            #expect(try c.pipeline(Array(failing.prefix(1))).count == 1)
        }
    }

    /// For a transaction-mode PgBouncer without prepared-statement support: nothing is prepared in the
    /// session, and queries and pipelines work the same.
    @Test func withoutPreparedStatementsNothingIsPreparedAndEverythingWorks() async throws {
        try await TestDatabase.with(schema: false) { db in
            var configuration = db.configuration
            configuration.preparedStatements = false
            let c = try PostgresConnection(configuration: configuration)
            #expect(try c.query("SELECT $1::int + 1", [41]).scalar(Int.self) == 42)
            let results = try c.pipeline((0..<100).map { PostgresStatement("SELECT $1::int * 2", [$0]) })
            #expect(try results.enumerated().allSatisfy { n, r in try r.scalar(Int.self) == n * 2 })
            #expect(try c.query("SELECT count(*) FROM pg_prepared_statements").scalar(Int.self) == 0)
            // The default prepares: the same statements leave prepared statements behind.
            let prepared = try db.connect()
            _ = try prepared.pipeline([PostgresStatement("SELECT $1::int * 2", [1])])
            #expect(try prepared.query("SELECT count(*) FROM pg_prepared_statements").scalar(Int.self) >= 1)
            #expect(!PostgresConfiguration.preparedStatementsFromEnvironment(["PGFLOW_PREPARED_STATEMENTS": "OFF"]))
            #expect(PostgresConfiguration.preparedStatementsFromEnvironment([:]))
        }
    }

    @Test func connectErrorNamesTheTargetButNotThePassword() throws {
        let config = PostgresConfiguration("postgresql://someone:s3cr3t@127.0.0.1:1/nowhere", connectTimeout: 2)
        let error = try #require(throws: PostgresError.self) { try PostgresConnection(configuration: config) }
        #expect(error.kind == .connection)
        #expect(error.message.contains("host=127.0.0.1 port=1 dbname=nowhere user=someone"))
        #expect(!error.description.contains("s3cr3t"))
    }
}
