// pgflow.yaml parsing and the schedule sync plan, without a database; one deploy against a real one.
import Foundation
import PGFlowClient
@testable import PGFlowDeploy
import PGFlowTestSupport
import Testing

@Suite struct DeploymentFileTests {
    func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    @Test func aNaiveAnchorIsWallClockTimeInTheSchedulesZone() throws {
        #expect(AnchorDate.parse("2026-01-01T00:30:00", timeZone: "Europe/Berlin") == date("2025-12-31T23:30:00Z"))
        #expect(AnchorDate.parse("2026-07-01 00:30", timeZone: "Europe/Berlin") == date("2026-06-30T22:30:00Z"), "summer time")
        #expect(AnchorDate.parse("2026-01-01", timeZone: "America/New_York") == date("2026-01-01T05:00:00Z"))
        #expect(AnchorDate.parse("2026-01-01T00:30:00Z", timeZone: "Europe/Berlin") == date("2026-01-01T00:30:00Z"))
        #expect(AnchorDate.parse("2026-01-01T00:30:00+05:30", timeZone: "Europe/Berlin") == date("2025-12-31T19:00:00Z"))
        #expect(AnchorDate.parse("2026-01-01T00:30:00.5Z", timeZone: "UTC") == date("2026-01-01T00:30:00Z").addingTimeInterval(0.5))
        for bad in ["tomorrow", "2026-02-30", "2026-13-01T00:00:00", "2026-01-01T25:00"] {
            #expect(AnchorDate.parse(bad, timeZone: "UTC") == nil, "\(bad)")
        }
    }

    @Test func theFileCarriesEverySettingAndNamesTheLineOfAnError() throws {
        let yaml = """
            deployments:
              - name: etl/daily
                entrypoint: ./etl.sh
                timeout_seconds: 600
                missed_runs: latest
                schedules:
                  - interval: 90m
                    timezone: Europe/Berlin
                    anchor_date: 2026-01-01T00:30:00
            """
        let entries = try DeploymentFile.parse(yaml, file: "p.yaml")
        #expect(entries.count == 1 && entries[0].name == "etl/daily" && entries[0].spec.timeoutSeconds == 600)
        #expect(entries[0].spec.missedRunPolicy == .latest)
        #expect(entries[0].schedules[0].anchorDate == date("2025-12-31T23:30:00Z"))
        #expect(entries[0].schedules[0].expression == "5400.0 seconds")
        #expect(throws: DeploymentFileError("p.yaml:4: timeout_seconds must be more than 0 (leave it out for no timeout)")) {
            try DeploymentFile.parse(yaml.replacingOccurrences(of: "600", with: "0"), file: "p.yaml")
        }
        #expect(throws: DeploymentFileError.self) { try DeploymentFile.parse(yaml.replacingOccurrences(of: "2026-01-01T00:30:00", with: "soon"), file: "p.yaml") }
    }

    @Test func envMapsSecretsAndRefusesPlainValues() throws {
        let yaml = """
            deployments:
              - name: etl/daily
                entrypoint: ./etl.sh
                env:
                  API_KEY: {secret: api-key}
                  DB_PASSWORD: {secret: db-password}
            """
        let entries = try DeploymentFile.parse(yaml, file: "p.yaml")
        #expect(entries[0].secretEnvironmentJSON == #"{"API_KEY":{"secret":"api-key"},"DB_PASSWORD":{"secret":"db-password"}}"#)
        let none = try DeploymentFile.parse(yaml.components(separatedBy: "    env:")[0], file: "p.yaml")
        #expect(none[0].secretEnvironmentJSON == "{}", "no env: clears the mapping on deploy")
        #expect(throws: DeploymentFileError.self) {
            try DeploymentFile.parse(yaml.replacingOccurrences(of: "{secret: api-key}", with: "plain-text"), file: "p.yaml")
        }
    }

    @Test func syncKeepsEqualSchedulesAndReplacesChangedOnes() {
        let anchor = date("2025-12-31T23:30:00Z")
        var interval = ScheduleSpec(kind: "interval", expression: "3600.0 seconds")
        interval.timeZone = "Europe/Berlin"
        interval.anchorDate = anchor
        let cron = ScheduleSpec(kind: "cron", expression: "0 6 * * *")
        let storedInterval = StoredSchedule(id: UUID(), kind: "interval", expression: "3600 seconds", intervalSeconds: 3600,
                                            timeZone: "Europe/Berlin", anchorDate: anchor)
        let storedCron = StoredSchedule(id: UUID(), kind: "cron", expression: "0 6 * * *")
        let same = ScheduleSync.plan(stored: [storedInterval, storedCron], wanted: [interval, cron])
        #expect(same == ScheduleSync.Plan(kept: [storedInterval.id, storedCron.id], added: [], removed: []), "an anchored schedule is kept")
        var moved = interval
        moved.anchorDate = anchor.addingTimeInterval(900)
        let changed = ScheduleSync.plan(stored: [storedInterval, storedCron], wanted: [moved, cron])
        #expect(changed.added == [moved] && changed.removed == [storedInterval.id])
        var unanchored = interval
        unanchored.anchorDate = nil
        #expect(ScheduleSync.plan(stored: [storedInterval], wanted: [unanchored]).kept == [storedInterval.id], "an interval keeps the phase it has")
        var anchoredCron = storedCron
        anchoredCron.anchorDate = anchor
        #expect(ScheduleSync.plan(stored: [anchoredCron], wanted: [cron]).removed == [anchoredCron.id], "an anchor removed from the file")
    }

    @Test func deployingTwiceKeepsTheSchedules() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let entries = try DeploymentFile.parse("""
                deployments:
                  - name: f/d
                    entrypoint: ./x
                    schedules:
                      - cron: "0 6 * * *"
                        parameters: {b: 1, a: [2]}
                        anchor_date: 2026-01-01
                """, file: "f.yaml")
            #expect(try Deployer.deploy(entries, file: "f.yaml", on: c) == [.init(name: "f/d", added: 1, removed: 0)])
            #expect(try Deployer.deploy(entries, file: "f.yaml", on: c) == [.init(name: "f/d", added: 0, removed: 0)])
            var bad = entries
            bad[0].spec.workQueue = "nope"
            #expect(throws: DeployError.self) { try Deployer.deploy(bad, file: "f.yaml", on: c) }
        }
    }

    @Test func triggersAndAutomationsDeployAsAutomationsAndRedeployReplacesThem() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let text = """
                deployments:
                  - name: etl/extract
                    entrypoint: ./extract.sh
                  - name: etl/load
                    entrypoint: ./load.sh
                    triggers:
                      - type: flow-run-state
                        deployment: etl/extract
                        states: [Completed]
                        parameters: {file: "{{ flow_run.result.file }}"}
                      - {type: reactive, match: acme.file.arrived, name: on-file, enabled: false}
                automations:
                  - name: extract-failed
                    trigger: {type: flow-run-state, deployment: etl/extract, states: [Failed, Crashed]}
                    actions: [{type: pause-deployment, deployment: etl/load}]
                """
            let entries = try DeploymentFile.parse(text, file: "f.yaml")
            let automations = try DeploymentFile.automations(text, file: "f.yaml")
            #expect(automations.map(\.name) == ["extract-failed"])
            _ = try Deployer.deploy(entries, automations: automations, file: "f.yaml", on: c)
            let rows = try c.query("SELECT name, paused::text, source FROM pgflow.automations ORDER BY name").rows.map { $0.values }
            #expect(rows == [["etl/load:on-file", "true", "deployment:etl/load"], ["etl/load:trigger-1", "false", "deployment:etl/load"],
                             ["extract-failed", "false", "file"]])
            // a trigger removed from the file goes on the next deploy
            let fewer = try DeploymentFile.parse(text.replacingOccurrences(of: "      - {type: reactive, match: acme.file.arrived, name: on-file, enabled: false}\n", with: ""), file: "f.yaml")
            _ = try Deployer.deploy(fewer, automations: automations, file: "f.yaml", on: c)
            #expect(try c.query("SELECT count(*) FROM pgflow.automations WHERE source LIKE 'deployment:%'").scalar(Int.self) == 1)
            #expect(throws: DeploymentFileError.self) { try DeploymentFile.parse("deployments:\n  - {name: a/b, entrypoint: x, triggers: 3}", file: "f.yaml") }
            let bad = try DeploymentFile.automations("automations:\n  - {name: x, trigger: {type: nope}, actions: [{type: cancel-flow-run}]}", file: "f.yaml")
            #expect(throws: DeployError.self) { try Deployer.deploy([], automations: bad, file: "f.yaml", on: c) }
        }
    }
}
