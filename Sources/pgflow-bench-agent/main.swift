// pgflow-bench-agent: an agent with in-process benchmark flows, and the drivers of the agent
// benchmarks; run by scripts/bench-agent.sh (not a test).
//
//   pgflow-bench-agent serve URL LIMIT        an agent on queue "bench" with flows swift:noop and swift:stamp
//                                             (LISTEN on $PGFLOW_LISTEN_DATABASE_URL when set)
//   pgflow-bench-agent enqueue URL DEPLOYMENT N GAP_MS
//                                             enqueues N runs one by one, GAP_MS apart (an idle agent between);
//                                             prints each run's id and when its enqueue returned (committed)
import Foundation
import Logging
import PGFlowAgent
import PGFlowPostgres
import ServiceLifecycle

let arguments = CommandLine.arguments
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("pgflow-bench-agent: \(message)\n".utf8))
    exit(2)
}
guard arguments.count >= 3 else { fail("usage: pgflow-bench-agent serve URL LIMIT | enqueue URL DEPLOYMENT N GAP_MS") }
let url = arguments[2]

switch arguments[1] {
case "serve":
    let limit = arguments.count > 3 ? Int(arguments[3]) ?? 100 : 100
    var logger = Logger(label: "pgflow.bench-agent")
    logger.logLevel = .warning
    let flows = [
        AgentFlow(name: "noop") { _ in nil },
        AgentFlow(name: "stamp") { context in
            context.log("started")  // the log line's timestamp is when the flow body began
            return nil
        },
    ]
    let pool = PostgresPool(configuration: PostgresConfiguration(url, applicationName: "pgflow-bench-agent"), maxConnections: 4)
    let agent = Agent(
        configuration: AgentConfiguration(queues: ["bench"], limit: limit, claimBatch: Int(ProcessInfo.processInfo.environment["PGFLOW_BENCH_CLAIM_BATCH"] ?? "") ?? 200, databaseURL: url,
                                          listenDatabaseURL: ProcessInfo.processInfo.environment["PGFLOW_LISTEN_DATABASE_URL"],
                                          takesPushes: ProcessInfo.processInfo.environment["PGFLOW_BENCH_PUSH"] != "0"),
        pool: pool, flows: flows, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [agent], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    do { try await group.run() } catch { fail("\(error)") }
case "enqueue":
    guard arguments.count == 6, let n = Int(arguments[4]), let gap = Int(arguments[5]) else { fail("enqueue URL DEPLOYMENT N GAP_MS") }
    do {
        let c = try PostgresConnection(configuration: PostgresConfiguration(url, applicationName: "pgflow-bench-enqueue"))
        // Prints "run id, time run_deployment returned (committed)" per run, for the script to load.
        for _ in 0..<n {
            let id = try c.query("SELECT pgflow.run_deployment($1)", [arguments[3]]).scalar(UUID.self)
            print("\(id.uuidString.lowercased()),\(Date().postgresText!)")
            usleep(UInt32(gap * 1000))
        }
    } catch { fail("\(error)") }
default:
    fail("unknown mode \(arguments[1])")
}
