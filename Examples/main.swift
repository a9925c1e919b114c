// pgflow-examples: the SDK examples, each a flow run recorded in PostgreSQL (local mode).
//
//   PGFLOW_DATABASE_URL=postgresql://... swift run pgflow-examples seed|fan-out|cached|subflow
//
// Then read what happened with SQL: SELECT * FROM pgflow.flow_run_history; SELECT * FROM pgflow.task_run_history;
import Foundation
import PGFlow

let example = CommandLine.arguments.dropFirst().first ?? ""
do {
    switch example {
    case "seed":
        print("stored", try await seedPipeline("https://example.com/feed"), "rows")
    case "fan-out":
        print("sum of scores:", try await fanOut(100))
    case "cached":
        let clock = ContinuousClock()
        for attempt in 1...2 {
            let start = clock.now
            let value = try await cachedTwice(1_000)
            print("run \(attempt): \(value) in \(clock.now - start)")
        }
    case "subflow":
        print(try await parentFlow(20))
    default:
        FileHandle.standardError.write(Data("usage: pgflow-examples seed|fan-out|cached|subflow (set PGFLOW_DATABASE_URL)\n".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("pgflow-examples: \(error)\n".utf8))
    exit(1)
}
