// pgflow-sdk-probe: a flow process for the SDK's crash test (Tests/PGFlowTests/TaskBatchingTests.swift),
// not a tool. `pgflow-sdk-probe URL MARKERS` runs a flow that submits no-op tasks without end, 100 at
// a time; each task body sleeps 0 to 2 ms, then appends its input and a newline to MARKERS (one write,
// so a line is there as soon as the body has finished) and returns. The test kills the process and
// checks that every task run recorded Completed has its line.
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
    try await Task.sleep(for: .microseconds(Int.random(in: 0...2_000)))
    markers.write(Data("\(n)\n".utf8))
    return n
}
let forever = Flow("crash-probe") { (_: Int) -> Int in
    var next = 0
    while true {
        _ = try await probe.map(Array(next..<(next + 1_000)), maxConcurrency: 100)
        next += 1_000
    }
}
do {
    _ = try await forever.run(0, engine: engine)
} catch {
    FileHandle.standardError.write(Data("pgflow-sdk-probe: \(error)\n".utf8))
    exit(1)
}
