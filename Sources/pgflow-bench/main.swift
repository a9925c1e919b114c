// pgflow-bench: benchmarks of pgflow's PostgreSQL layer, run by scripts/bench-*.sh (not a test).
//
//   pgflow-bench driver-select1 URL SECONDS   SELECT 1 round trips/s: sync loop, then async via the pool
//   pgflow-bench driver-claim URL SECONDS     single-row SKIP LOCKED claims/s on table bench_jobs
//   pgflow-bench notify-wake URL SECONDS      NOTIFY → listener wake-up latency (p50/p99, ms) while
//                                             the same process keeps its pool busy, as an agent does
//
// Prints `name value` lines that the scripts collect.
import Foundation
import PGFlowPostgres

let arguments = CommandLine.arguments
guard arguments.count == 4, let seconds = Double(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: pgflow-bench driver-select1|driver-claim URL SECONDS\n".utf8))
    exit(2)
}
let configuration = PostgresConfiguration(arguments[2], applicationName: "pgflow-bench")

/// Runs `body` repeatedly for `seconds` and returns operations per second.
func rate(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    let deadline = start.advanced(by: .milliseconds(Int(seconds * 1000)))
    var count = 0
    while clock.now < deadline {
        for _ in 0..<100 { try body() }
        count += 100
    }
    let elapsed = clock.now - start
    return Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

func asyncRate(seconds: Double, _ body: () async throws -> Void) async rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    let deadline = start.advanced(by: .milliseconds(Int(seconds * 1000)))
    var count = 0
    while clock.now < deadline {
        for _ in 0..<100 { try await body() }
        count += 100
    }
    let elapsed = clock.now - start
    return Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

let claimSQL = """
    WITH next AS (
        SELECT id FROM bench_jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
    )
    UPDATE bench_jobs AS j SET state = 'claimed', claimed_at = now() FROM next WHERE j.id = next.id RETURNING j.id
    """

do {
    switch arguments[1] {
    case "driver-select1":
        let connection = try PostgresConnection(configuration: configuration)
        let sync = try rate(seconds: seconds) { _ = try connection.query("SELECT 1") }
        print("select1_sync_per_s \(Int(sync))")
        let pool = PostgresPool(configuration: configuration, maxConnections: 1)
        let viaPool = try await asyncRate(seconds: seconds) { _ = try await pool.query("SELECT 1") }
        print("select1_pool_per_s \(Int(viaPool))")
    case "driver-claim":
        let connection = try PostgresConnection(configuration: configuration)
        let sync = try rate(seconds: seconds) {
            guard try connection.query(claimSQL).rows.count == 1 else { throw PostgresError(kind: .usage, message: "bench_jobs ran dry") }
        }
        print("claim_sync_per_s \(Int(sync))")
    case "notify-wake":
        let latencies = try await notifyWakeLatencies(seconds: seconds)
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        print("notify_wake_samples \(sorted.count)")
        print("notify_wake_p50_us \(Int(percentile(0.50) * 1000))")
        print("notify_wake_p99_us \(Int(percentile(0.99) * 1000))")
    default:
        throw PostgresError(kind: .usage, message: "unknown benchmark \(arguments[1])")
    }
} catch {
    FileHandle.standardError.write(Data("pgflow-bench: \(error)\n".utf8))
    exit(1)
}

/// NOTIFYs sent every ~5 ms from a connection on a thread of its own, each carrying its send time;
/// a `PostgresListener` in this process receives them while four tasks keep a 4-connection pool busy
/// with round trips (an agent's claims, states and logs). Returns each delivery's latency in ms.
func notifyWakeLatencies(seconds: Double) async throws -> [Double] {
    let channel = "pgflow_bench_wake"
    let events = PostgresListener.listen(configuration: configuration, channels: [channel])
    var iterator = events.makeAsyncIterator()
    guard await iterator.next() == .listening else { throw PostgresError(kind: .connection, message: "listener did not start") }
    let pool = PostgresPool(configuration: configuration, maxConnections: 4)
    let origin = ContinuousClock.now
    @Sendable func millisecondsSinceOrigin() -> Double {
        let d = ContinuousClock.now - origin
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
    let count = max(20, Int(seconds * 200))
    let load = Task {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { while !Task.isCancelled { _ = try? await pool.query("SELECT 1") } }
            }
        }
    }
    let sender = Thread {
        guard let c = try? PostgresConnection(configuration: configuration) else { return }
        for _ in 0..<count {
            _ = try? c.query("SELECT pg_notify($1, $2)", [channel, String(millisecondsSinceOrigin())])
            usleep(5_000)
        }
    }
    sender.start()
    var latencies: [Double] = []
    while latencies.count < count, let event = await iterator.next() {
        if case .notification(_, let payload, _) = event, let sent = Double(payload) {
            latencies.append(millisecondsSinceOrigin() - sent)
        }
    }
    load.cancel()
    pool.close()
    return latencies
}
