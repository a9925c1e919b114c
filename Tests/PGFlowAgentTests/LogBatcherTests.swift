// Log lines through a database outage: kept in memory, then on disk, written in order when it is back.
import Foundation
import PGFlowClient
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@testable import PGFlowAgent

@Suite(.serialized) struct LogBatcherTests {
    /// A run to attach lines to, and a pool reaching the database through a proxy the test can cut.
    static func setUp(_ db: TestDatabase) throws -> (PostgresConnection, UUID, TCPProxy, PostgresPool) {
        let c = try db.connect()
        try c.query("SELECT pgflow.create_deployment('logs', 'lines', 'true')")
        let runID = try c.query("SELECT pgflow.run_deployment('logs/lines')").scalar(UUID.self)
        let port = try #require(Int(try c.query("SHOW port").scalar(String.self)))
        let user = try c.query("SELECT current_user::text").scalar(String.self)
        let proxy = try TCPProxy(upstreamPort: port)
        let pool = PostgresPool(
            configuration: PostgresConfiguration("host=127.0.0.1 port=\(proxy.port) user=\(user) dbname=\(db.name)", connectTimeout: 2),
            maxConnections: 2)
        return (c, runID, proxy, pool)
    }

    static func messages(_ c: PostgresConnection, _ runID: UUID) throws -> [String] {
        try c.query("SELECT message FROM pgflow.logs WHERE flow_run_id = $1 ORDER BY id", [runID]).rows.map { try $0.decode(String.self, at: 0) }
    }

    @Test func linesWaitOnDiskThroughAnOutageAndArriveInOrder() async throws {
        try await TestDatabase.with { db in
            let (c, runID, proxy, pool) = try Self.setUp(db)
            defer { proxy.close() }
            // 750 bytes: ten of these lines in memory (74 bytes each as counted), the rest on disk.
            let batcher = LogBatcher(pool: pool, memoryBytes: 750, spillBytes: 1 << 20)
            let writer = Task { await batcher.run() }
            proxy.cut()
            for i in 0..<500 { batcher.append(LogLine(flowRunID: runID, level: 20, name: "test", message: "line \(i)")) }
            #expect(try Self.messages(c, runID).isEmpty)
            proxy.restore()
            await batcher.flushed()
            #expect(try Self.messages(c, runID) == (0..<500).map { "line \($0)" })
            batcher.finish()
            await writer.value
        }
    }

    @Test func aBatchWhoseCommitReplyIsLostIsSentAgainAndStoredOnce() async throws {
        try await TestDatabase.with { db in
            let (c, runID, proxy, pool) = try Self.setUp(db)
            defer { proxy.close() }
            let batcher = LogBatcher(pool: pool, memoryBytes: 1 << 20, spillBytes: 1 << 20)
            let writer = Task { await batcher.run() }
            // a first batch: the connection is up and write_logs prepared on it, so the next round trip is its execution
            batcher.append(LogLine(flowRunID: runID, level: 20, name: "test", message: "warm"))
            await batcher.flushed()
            proxy.loseNextReply()  // write_logs commits, its answer never arrives: the batcher must send it again
            for i in 0..<5 { batcher.append(LogLine(flowRunID: runID, level: 20, name: "test", message: "line \(i)")) }
            await batcher.flushed()
            #expect(try Self.messages(c, runID) == ["warm"] + (0..<5).map { "line \($0)" }, "each line once")
            batcher.finish()
            await writer.value
        }
    }

    @Test func beyondTheSpillBoundLinesAreDroppedAndTheRunSaysHowMany() async throws {
        try await TestDatabase.with { db in
            let (c, runID, proxy, pool) = try Self.setUp(db)
            defer { proxy.close() }
            // 750 bytes: ten of these lines in memory (74 bytes each as counted), the rest on disk.
            let batcher = LogBatcher(pool: pool, memoryBytes: 750, spillBytes: 4_000)
            let writer = Task { await batcher.run() }
            proxy.cut()
            for i in 0..<500 { batcher.append(LogLine(flowRunID: runID, level: 20, name: "test", message: "line \(i)")) }
            proxy.restore()
            await batcher.flushed()
            #expect(try await eventually(timeout: 60) { try Self.messages(c, runID).last?.contains("were dropped") == true })
            let lines = try Self.messages(c, runID)
            let kept = lines.dropLast().map { Int($0.dropFirst(5))! }
            #expect(kept.count > 10 && kept.count < 500)
            #expect(kept == kept.sorted() && Set(kept).count == kept.count, "kept lines stay in order")
            #expect(Array(kept.prefix(10)) == Array(0..<10), "the lines in memory when the outage began are kept")
            #expect(lines.last?.hasPrefix("\(500 - kept.count) log line(s) of this run were dropped") == true, "\(lines.last ?? "")")
            batcher.finish()
            await writer.value
        }
    }
}
