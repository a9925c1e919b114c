// PGFlowCLIKit without the binary: timestamps, error lines and exit codes, time arguments, settings,
// tables; and RunFollower against a real database.
import Foundation
import PGFlowClient
@testable import PGFlowCLIKit
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct CLIKitTests {
    @Test func oneTimestampFormat() throws {
        let utc = Timestamps(utc: true)
        #expect(utc.cell("2026-12-01 08:45:00+00") == "2026-12-01 08:45:00+00:00", "whole seconds")
        #expect(utc.cell("2026-12-01 07:06:03.123456+00") == "2026-12-01 07:06:03+00:00", "fractions: the same format")
        #expect(utc.cell("2026-12-01 12:36:03.5+05:30") == "2026-12-01 07:06:03+00:00")
        #expect(utc.cell(nil) == "-" && utc.cell("two\nlines") == "two lines" && utc.cell("2026-12-01") == "2026-12-01")
        let berlin = Timestamps(timeZone: TimeZone(identifier: "Europe/Berlin")!)
        #expect(berlin.cell("2026-12-01 08:45:00+00") == "2026-12-01 09:45:00+01:00")
        #expect(berlin.format(ISO8601DateFormatter().date(from: "2026-07-01T08:45:59Z")!) == "2026-07-01 10:45:59+02:00")
    }

    @Test func errorsNameTheCLICommandAndCarryTheirExitCode() {
        let queue = PostgresError(kind: .server, sqlState: "P0002", message: "pgflow: unknown work queue 'gpu'",
                                  hint: "create it with SELECT pgflow.create_work_queue('gpu')")
        #expect(ErrorReport.cliError(for: queue) == CLIError(description: "unknown work queue 'gpu'; create it with `pgflow work-queue create gpu`", code: 5))
        let limit = PostgresError(kind: .server, sqlState: "22023", message: "pgflow: bad", hint: "pass 0 or more, or NULL for no limit")
        #expect(ErrorReport.cliError(for: limit).code == 6 && !ErrorReport.cliError(for: limit).description.contains("NULL"))
        let busy = PostgresError(kind: .server, sqlState: "55000", message: "pgflow: busy",
                                 hint: "cancel them first (pgflow.cancel_flow_run) or let them end, then delete it again")
        #expect(ErrorReport.cliError(for: busy) == CLIError(description: "busy; cancel them first (`pgflow flow-run cancel RUN_ID`) or let them end, then delete it again", code: 1))
        #expect(ErrorReport.cliError(for: PostgresError(kind: .connection, message: "no server")).code == 3)
        #expect(ErrorReport.cliError(for: PostgresError(kind: .server, sqlState: "42883", message: "no function")).code == 2)
        #expect(ErrorReport.cliHint("SELECT * FROM pgflow.deployment_list shows them") == "`pgflow deployment ls` lists them")
    }

    @Test func timeArguments() throws {
        #expect(TimeArguments.seconds("90") == 90 && TimeArguments.seconds("15m") == 900 && TimeArguments.seconds("1.5h") == 5400)
        #expect(TimeArguments.seconds("30d") == 30 * 86_400 && TimeArguments.seconds("-1") == nil && TimeArguments.seconds("soon") == nil)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(try TimeArguments.since("2h", now: now) == now.addingTimeInterval(-7200))
        #expect(TimeArguments.date("2026-12-01T06:00:00Z") == ISO8601DateFormatter().date(from: "2026-12-01T06:00:00Z"))
        #expect(TimeArguments.date("2026-12-01 06:00", timeZone: .gmt) == ISO8601DateFormatter().date(from: "2026-12-01T06:00:00Z"))
        #expect(throws: CLIError.self) { try TimeArguments.startTime(startIn: "1h", startAt: "2026-12-01", now: now) }
        #expect(try TimeArguments.startTime(startIn: "1h", startAt: nil, now: now) == now.addingTimeInterval(3600))
        #expect(try TimeArguments.parametersJSON(params: ["n=5", "day=mon"], json: #"{"x": [1]}"#) == #"{"day":"mon","n":5,"x":[1]}"#)
    }

    @Test func deploymentSettings() throws {
        #expect(try DeploymentSettings.json(concurrencyLimit: "none", timeout: "10m") == #"{"concurrency_limit":null,"timeout_seconds":600}"#)
        #expect(try DeploymentSettings.json(tags: "a, b", retryDelays: "1,10", missedRuns: "run-all")
                == #"{"missed_run_policy":"run_all","retry_delays":[1,10],"tags":["a","b"]}"#)
        #expect(try DeploymentSettings.json(concurrencyLimit: "-1") == #"{"concurrency_limit":-1}"#, "the database says why -1 is wrong")
        #expect(throws: CLIError.self) { try DeploymentSettings.json() }
        #expect(throws: CLIError.self) { try DeploymentSettings.json(retryDelays: "1,x") }
    }

    @Test func tables() {
        #expect(Table.lines(header: ["A", "LONG"], rows: [["x", "1"], ["yy", "22"]]) == ["A   LONG", "x   1", "yy  22"])
        #expect(Table.lines(header: ["A"], rows: [["abcdef"]], maxWidth: 4) == ["A", "abc…"])
    }

    @Test func theFollowerReportsEveryStateInOrderThroughNotifications() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            try c.query("SELECT pgflow.create_deployment('f', 'd', './x')")
            let run = try c.query("SELECT pgflow.run_deployment('f/d')").scalar(UUID.self)
            let agent = try c.query("SELECT pgflow.register_agent('a', ARRAY['default'])").scalar(UUID.self)
            var follower = RunFollower(configuration: db.configuration)
            follower.fallbackInterval = 3600  // only LISTEN/NOTIFY wakes it
            let seen = EventLog()
            let task = Task {
                try await follower.follow(run, logs: true, on: try db.connect()) { seen.append($0) }
            }
            #expect(try await eventually(timeout: 60) { seen.states == ["Scheduled"] }, "its first look")
            try c.query("SELECT count(*) FROM pgflow.claim_flow_runs($1, NULL, 1, true)", [agent])  // Pending, Running
            try c.query("SELECT pgflow.write_log($1, 20, 'working', 'stdout')", [run])
            try c.query("SELECT pgflow.set_flow_run_state($1, 'COMPLETED', p_agent_id => $2)", [run, agent])
            let final = try await task.value
            #expect(final.name == "Completed")
            #expect(seen.states == ["Scheduled", "Pending", "Running", "Completed"], "every state once, in order")
            #expect(seen.logs == ["working"])
        }
    }
}

/// Events a follower reported, from its task.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [RunFollower.Event] = []

    func append(_ event: RunFollower.Event) { lock.withLock { events.append(event) } }

    var states: [String] {
        lock.withLock { events.compactMap { if case .state(let s) = $0 { s.name } else { nil } } }
    }

    var logs: [String] {
        lock.withLock { events.compactMap { if case .log(let l) = $0 { l.message } else { nil } } }
    }
}
