// pgflow-sdk-probe: a flow process for the SDK's crash test (Tests/PGFlowTests/TaskBatchingTests.swift),
// not a tool. `pgflow-sdk-probe URL MARKERS` runs a flow that maps a task over 0..<2000, 100 at a time.
// A task body sleeps 1 to 5 ms, or 10 minutes when its input is a multiple of 100 (those never finish
// before the test kills the process), then appends its input and a newline to MARKERS (one write, so a
// line is there as soon as the body has finished) and returns it. The test kills the process once
// many task runs are recorded and checks that every task run recorded Completed has its line.
import Foundation
import PGFlow
import PGFlowPostgres

let arguments = CommandLine.arguments
guard arguments.count == 3, let markers = FileHandle(forWritingAtPath: arguments[2]) ?? {
    FileManager.default.createFile(atPath: arguments[2], contents: nil)
    return FileHandle(forWritingAtPath: arguments[2])
}() else {
    FileHandle.standardError.write(Data("usage: pgflow-sdk-probe URL MARKERS\n".utf8))
    exit(2)
}
let engine = PGFlowEngine(pool: PostgresPool(configuration: PostgresConfiguration(arguments[1], applicationName: "pgflow-sdk-probe"),
                                             maxConnections: 4))
let probe = FlowTask("probe") { (n: Int) -> Int in
    try await Task.sleep(for: n % 100 == 0 ? .seconds(600) : .milliseconds(Int.random(in: 1...5)))
    markers.write(Data("\(n)\n".utf8))
    return n
}
let forever = Flow("crash-probe") { (n: Int) -> Int in
    try await probe.map(Array(0..<n), maxConcurrency: 100).reduce(0, +)
}
do {
    _ = try await forever.run(2_000, engine: engine)
} catch {
    FileHandle.standardError.write(Data("pgflow-sdk-probe: \(error)\n".utf8))
    exit(1)
}
