// pgflow-bench-sdk: tracked task overhead of the Swift SDK, run by scripts/bench-sdk.sh (not a test).
//
//   pgflow-bench-sdk URL [TASKS]
//
// Runs a flow of TASKS sequential no-op tasks and one of TASKS submitted no-op tasks (local mode, every
// task run and state recorded), checks in PostgreSQL that every task run and state is there, and prints
// `name value` lines: tasks/s and µs/task for each.
import Foundation
import PGFlow
import PGFlowPostgres

let arguments = CommandLine.arguments
guard arguments.count >= 2, arguments.count <= 3 else {
    FileHandle.standardError.write(Data("usage: pgflow-bench-sdk URL [TASKS]\n".utf8))
    exit(2)
}
let count = arguments.count == 3 ? Int(arguments[2]) ?? 10_000 : 10_000
let pool = PostgresPool(configuration: PostgresConfiguration(arguments[1], applicationName: "pgflow-bench-sdk"), maxConnections: 4)
let engine = PGFlowEngine(pool: pool)

let noop = FlowTask("noop") { (i: Int) in i }
let sequential = Flow("bench-sequential") { (n: Int) -> Int in
    var sum = 0
    for i in 0..<n { sum += try await noop(i) }
    return sum
}
let submitted = Flow("bench-submitted") { (n: Int) -> Int in
    let futures = (0..<n).map { noop.submit($0) }
    return try await wait(futures).reduce(0, +)
}

/// Runs a flow of `count` tasks, verifies what PostgreSQL recorded, and prints the figures.
func measure(_ label: String, _ flow: Flow<Int, Int>) async throws {
    let clock = ContinuousClock()
    let start = clock.now
    let result = try await flow.run(count, engine: engine)
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    _ = try result.get()
    let row = try await pool.query(
        "SELECT completed, states, results FROM pgflow.flow_run_task_counts($1)", [result.flowRunID]).first!
    let (completed, states, results) = (try row.decode(Int.self, at: 0), try row.decode(Int.self, at: 1), try row.decode(Int.self, at: 2))
    guard completed == count, states == 3 * count, results == count else {
        FileHandle.standardError.write(Data("\(label): expected \(count) completed task runs, \(3 * count) states and \(count) results; found \(completed), \(states), \(results)\n".utf8))
        exit(1)
    }
    print("\(label)_tasks \(count)")
    print("\(label)_seconds \(String(format: "%.3f", seconds))")
    print("\(label)_tasks_per_s \(String(format: "%.0f", Double(count) / seconds))")
    print("\(label)_us_per_task \(String(format: "%.1f", seconds * 1e6 / Double(count)))")
}

do {
    try await measure("sequential", sequential)
    try await measure("submitted", submitted)
} catch {
    FileHandle.standardError.write(Data("pgflow-bench-sdk: \(error)\n".utf8))
    exit(1)
}
