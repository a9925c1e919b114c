// `pgflow deployment ls|inspect|run|pause|resume|delete`.
import ArgumentParser
import Foundation
import PGFlowClient
import PGFlowPostgres

struct DeploymentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deployment", abstract: "List, inspect, run, pause, resume and delete deployments.",
        subcommands: [List.self, Inspect.self, Run.self, Pause.self, Resume.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List deployments.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { printListing(try PGFlowListing.deployments(json: output.json, on: try database.connect()), json: output.json) }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a deployment and its schedules.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "flow/deployment") var name: String
        func run() throws {
            try reportingErrors {
                let c = try database.connect()
                let deployment = try PGFlowListing.deployments(name: name, json: output.json, on: c)
                let schedules = try PGFlowListing.schedules(deployment: name, json: output.json, on: c)
                if output.json {
                    print("{\"deployment\": \(String((deployment.first?["json"] ?? "[{}]").dropFirst().dropLast())), \"schedules\": \(schedules.first?["json"] ?? "[]")}")
                } else {
                    try printRecord(deployment, json: false, missing: "unknown deployment \(name)")
                    print("\nschedules:")
                    printListing(schedules, json: false)
                }
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enqueue a run of a deployment; prints its id.",
            discussion: "With --watch, exits 0 when the run completes and 1 when it fails, crashes or is cancelled.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "flow/deployment") var name: String
        @Option(name: .customLong("param"), help: "A parameter as key=value (value parsed as JSON, else text); repeatable.")
        var params: [String] = []
        @Option(name: .customLong("params"), help: "All parameters as a JSON object.")
        var paramsJSON: String?
        @Option(name: .customLong("start-in"), help: "Start after a delay: 90, 90s, 15m, 2h, 1d.")
        var startIn: String?
        @Option(name: .customLong("start-at"), help: "Start at an ISO 8601 time (2026-11-21T06:00:00Z).")
        var startAt: String?
        @Flag(help: "Follow the run's state changes until it ends.") var watch = false
        @Option(help: "Seconds between looks with --watch.") var poll: Double = 0.5

        func run() throws {
            try reportingErrors {
                let parameters = try RunParameters.json(params: params, json: paramsJSON)
                let start = try RunParameters.startTime(startIn: startIn, startAt: startAt)
                let c = try database.connect()
                let id = try PGFlowClient.runDeployment(name, parametersJSON: parameters, scheduledTime: start, on: c)
                print(id.uuidString.lowercased())
                if watch { try Watch.follow(id, every: poll, on: c) }
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

/// `--param`, `--params`, `--start-in` and `--start-at`.
enum RunParameters {
    /// The parameters as one JSON object text.
    static func json(params: [String], json: String?) throws -> String {
        var object: [String: Any] = [:]
        if let json {
            guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let dict = value as? [String: Any] else {
                throw CLIError.invalid("--params must be a JSON object such as '{\"day\": \"2026-11-21\"}'")
            }
            object = dict
        }
        for p in params {
            guard let eq = p.firstIndex(of: "="), eq != p.startIndex else {
                throw CLIError.invalid("bad --param \"\(p)\": write key=value, e.g. --param day=2026-11-21")
            }
            let value = String(p[p.index(after: eq)...])
            object[String(p[..<eq])] = (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)) ?? value
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// The scheduled start, or nil for now.
    static func startTime(startIn: String?, startAt: String?, now: Date = Date()) throws -> Date? {
        if startIn != nil && startAt != nil { throw CLIError.invalid("give --start-in or --start-at, not both") }
        if let startAt {
            guard let date = ISO8601DateFormatter().date(from: startAt) else {
                throw CLIError.invalid("bad --start-at \"\(startAt)\": use ISO 8601 with a zone, e.g. 2026-11-21T06:00:00Z")
            }
            return date
        }
        guard let startIn else { return nil }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var text = startIn
        var factor = 1.0
        if let last = text.last, let f = units[last] {
            factor = f
            text.removeLast()
        }
        guard let n = Double(text), n >= 0 else { throw CLIError.invalid("bad --start-in \"\(startIn)\": use 90, 90s, 15m, 2h or 1d") }
        return now.addingTimeInterval(n * factor)
    }
}

/// `--watch` and `logs --follow`: polls the run and prints each state change (and new log lines).
enum Watch {
    static func follow(_ id: UUID, every seconds: Double, logs: Bool = false, on c: PostgresConnection) throws {
        var last = ""
        var lastLog: Int64 = 0
        while true {
            guard let state = try PGFlowListing.flowRunProgress(id, on: c) else { throw CLIError.notFound("flow run \(id) no longer exists") }
            if logs {
                for row in try PGFlowListing.logs(flowRun: id, after: lastLog, json: false, on: c).rows {
                    lastLog = max(lastLog, Int64(row["id"] ?? "0") ?? 0)
                    print("\(row["timestamp"] ?? "") \(row["name"] ?? "") \(row["message"] ?? "")")
                }
            }
            if state.name != last && !logs {
                print("\(ISO8601DateFormatter().string(from: Date())) \(state.name)")
                last = state.name
            }
            if ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"].contains(state.type) {
                if state.type != "COMPLETED" { throw ExitCode(1) }
                return
            }
            usleep(useconds_t(seconds * 1_000_000))
        }
    }
}
