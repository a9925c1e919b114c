// `pgflow deployment ls|inspect|run|set|pause|resume|delete`.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient
import PGFlowPostgres

struct DeploymentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deployment", abstract: "Deployments: list, inspect, run, change, pause.",
        subcommands: [List.self, Inspect.self, Run.self, Change.self, Pause.self, Resume.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List deployments.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.deployments(json: output.json, on: try database.connect())) }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a deployment with every setting, and its schedules.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "flow/deployment") var name: String
        func run() throws {
            try reportingErrors {
                let c = try database.connect()
                let deployment = try PGFlowListing.deployments(name: name, detail: true, json: output.json, on: c)
                let schedules = try PGFlowListing.schedules(deployment: name, json: output.json, on: c)
                if output.json {
                    print("{\"deployment\": \(String((deployment.first?["json"] ?? "[{}]").dropFirst().dropLast())), \"schedules\": \(schedules.first?["json"] ?? "[]")}")
                } else {
                    try output.printRecord(deployment, missing: "unknown deployment \(name): `pgflow deployment ls` lists them")
                    print("\nschedules:")
                    output.printListing(schedules)
                }
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enqueue a run of a deployment; prints its id.",
            discussion: "With --watch, prints every state the run passes through and exits 0 when it completes, 1 when it fails, crashes or is cancelled.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "flow/deployment") var name: String
        @Option(name: .customLong("param"), help: "A parameter as key=value (value parsed as JSON, else text); repeatable.")
        var params: [String] = []
        @Option(name: .customLong("params"), help: "All parameters as a JSON object.")
        var paramsJSON: String?
        @Option(name: .customLong("start-in"), help: "Start after a delay: 90, 90s, 15m, 2h, 1d.")
        var startIn: String?
        @Option(name: .customLong("start-at"), help: "Start at a time: 2026-11-21T06:00:00Z (without a zone: local time).")
        var startAt: String?
        @Option(help: "A tag added to the deployment's; repeatable.") var tag: [String] = []
        @Option(name: .customLong("name"), help: "The run's name (default: a random one).") var runName: String?
        @Option(name: .customLong("idempotency-key"), help: "Asking again with the same key returns the first run.") var idempotencyKey: String?
        @Option(name: .customLong("work-queue"), help: "Another work queue than the deployment's.") var workQueue: String?
        @Flag(help: "Follow the run's states until it ends.") var watch = false
        @Flag(help: "With --watch, times in UTC.") var utc = false

        func run() async throws {
            try await reportingErrors {
                var request = RunRequest()
                request.parametersJSON = try TimeArguments.parametersJSON(params: params, json: paramsJSON)
                request.scheduledTime = try TimeArguments.startTime(startIn: startIn, startAt: startAt)
                request.tags = tag.isEmpty ? nil : tag
                request.name = runName
                request.idempotencyKey = idempotencyKey
                request.workQueue = workQueue
                let c = try database.connect()
                let id = try PGFlowClient.runDeployment(name, request, on: c)
                print(id.uuidString.lowercased())
                fflush(nil)
                if watch { try await followRun(id, logs: false, database: database, utc: utc, on: c) }
            }
        }
    }

    struct Change: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: "Change some settings of a deployment and keep the others.",
            discussion: "The same settings as pgflow.yaml; a later `pgflow deploy` of a file sets them all again.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "flow/deployment") var name: String
        @Option(help: "A command, or swift:NAME.") var entrypoint: String?
        @Option(name: .customLong("params"), help: "Default parameters as a JSON object.") var paramsJSON: String?
        @Option(name: .customLong("work-queue"), help: "Its work queue.") var workQueue: String?
        @Option(help: "Its tags (comma-separated; '' for none).") var tags: String?
        @Option(help: "A description.") var description: String?
        @Option(help: "A version label.") var version: String?
        @Option(name: .customLong("concurrency-limit"), parsing: .unconditional, help: "Most of its runs running at once ('none': no limit).")
        var concurrencyLimit: String?
        @Option(name: .customLong("collision-strategy"), help: "ENQUEUE or CANCEL_NEW when the limit is full.") var collisionStrategy: String?
        @Option(parsing: .unconditional, help: "How many times a failed run runs again.") var retries: Int?
        @Option(name: .customLong("retry-delays"), help: "Seconds between retries, comma-separated.") var retryDelays: String?
        @Option(name: .customLong("retry-backoff"), help: "fixed, list or exponential.") var retryBackoff: String?
        @Option(name: .customLong("retry-jitter"), parsing: .unconditional, help: "Up to this fraction added to each delay.") var retryJitter: Double?
        @Option(parsing: .unconditional, help: "Seconds after which the agent stops a run, TimedOut ('none': no timeout).") var timeout: String?
        @Option(name: .customLong("missed-runs"), help: "run_all, latest, skip, or 'default' (the scheduler's).") var missedRuns: String?

        func run() throws {
            try reportingErrors {
                let settings = try DeploymentSettings.json(
                    entrypoint: entrypoint, parametersJSON: paramsJSON, workQueue: workQueue, tags: tags, description: description,
                    version: version, concurrencyLimit: concurrencyLimit, collisionStrategy: collisionStrategy, retries: retries,
                    retryDelays: retryDelays, retryBackoff: retryBackoff, retryJitter: retryJitter, timeout: timeout, missedRuns: missedRuns)
                try PGFlowClient.updateDeployment(name, settingsJSON: settings, on: try database.connect())
                print("updated \(name)")
            }
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a deployment's schedules (its future scheduled runs are removed).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "flow/deployment") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.setDeploymentPaused(name, paused: true, on: try database.connect())
                print("paused \(name)")
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused deployment's schedules.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "flow/deployment") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.setDeploymentPaused(name, paused: false, on: try database.connect())
                print("resumed \(name)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a deployment, its schedules and its runs that have not started.",
            discussion: """
                Runs awaiting a retry end Cancelled; finished runs stay in the history without a deployment.
                Refused (exit 1) while one of its runs is pending, running, paused or cancelling: cancel them first.
                """)
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "flow/deployment") var name: String
        func run() throws {
            try reportingErrors {
                let runs = try PGFlowClient.deleteDeployment(name, on: try database.connect())
                print("deleted \(name) and \(runs) run(s) that had not started")
            }
        }
    }
}

/// `--watch` and `logs --follow`: every state (and log line) through LISTEN/NOTIFY until the run ends;
/// exit 1 unless it completed.
func followRun(_ id: UUID, logs: Bool, database: DatabaseOptions, utc: Bool, on c: PostgresConnection) async throws {
    let timestamps = Timestamps(utc: utc)
    let final = try await RunFollower(configuration: database.configuration).follow(id, states: !logs, logs: logs, on: c) { event in
        switch event {
        case .state(let s): print("\(timestamps.format(s.timestamp)) \(s.name)\(s.message.map { " (\($0))" } ?? "")")
        case .log(let l): print("\(timestamps.format(l.timestamp)) \(l.level.padding(toLength: 7, withPad: " ", startingAt: 0)) \(l.name) \(l.message)")
        }
        fflush(nil)  // a follower (tail, a test) sees each line as it happens
    }
    if final.type != "COMPLETED" { throw ExitCode(1) }
}
