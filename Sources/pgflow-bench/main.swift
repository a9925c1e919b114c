// pgflow-bench: benchmarks of pgflow's PostgreSQL layer, run by scripts/bench-*.sh (not a test).
//
//   pgflow-bench driver-select1 URL SECONDS   SELECT 1 round trips/s: sync loop, then async via the pool
//   pgflow-bench driver-claim URL SECONDS     single-row SKIP LOCKED claims/s on table bench_jobs
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
    default:
        throw PostgresError(kind: .usage, message: "unknown benchmark \(arguments[1])")
    }
} catch {
    FileHandle.standardError.write(Data("pgflow-bench: \(error)\n".utf8))
    exit(1)
}
