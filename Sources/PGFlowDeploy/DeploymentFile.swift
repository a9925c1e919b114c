// pgflow.yaml: the deployments `pgflow deploy` registers. Every error names the file and line.
//
//   deployments:
//     - name: etl/daily              # flow/deployment
//       entrypoint: ./etl.sh         # a command, or swift:NAME for a flow an agent registers
//       parameters: {region: eu}
//       work_queue: default          # or queue:
//       tags: [etl]
//       concurrency_limit: 1         # or concurrency:
//       retries: 3
//       retry_delays: [10, 60]       # or retry_delay: 10
//       retry_backoff: list          # fixed | list | exponential
//       missed_runs: latest          # run_all | latest | skip
//       timeout_seconds: 600         # the agent stops a run past it (TimedOut)
//       env:                         # secrets the agent puts in the command's environment
//         API_KEY: {secret: api-key} #   (`pgflow secret set api-key`; decrypted by the agent only)
//       schedules:
//         - cron: "0 6 * * *"
//           timezone: Europe/Paris
//         - interval: 1h30m          # or seconds; anchor_date: 2026-01-01T00:00:00 (in the schedule's
//                                    #   timezone unless it names an offset or Z)
//         - rrule: "FREQ=WEEKLY;BYDAY=MO"
import Foundation
import PGFlowClient
import PGFlowSchedule
import Yams

/// One deployment of the file, with its schedules and the line it starts on.
public struct DeploymentEntry: Sendable, Equatable {
    /// The deployment's settings.
    public var spec: DeploymentSpec
    /// Its schedules, in file order.
    public var schedules: [ScheduleSpec]
    /// The line its entry starts on.
    public var line: Int
    /// The secrets mapped into a command's environment, as `{"VAR": {"secret": "name"}}` JSON
    /// (`{}` when the file has no `env:`, so deploying clears a mapping the file no longer has).
    public var secretEnvironmentJSON: String = "{}"
    /// `triggers:` — the deployment's triggers as a JSON list (each runs this deployment; docs/events.md).
    public var triggersJSON: String = "[]"
    /// `flow/deployment`.
    public var name: String { "\(spec.flow)/\(spec.name)" }
}

/// A deployment file that cannot be used: one line naming the file and line, and what to fix.
public struct DeploymentFileError: Error, CustomStringConvertible, Equatable {
    /// `file:line: what is wrong`.
    public let description: String

    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

/// One automation of a file's `automations:` list.
public struct AutomationEntry: Sendable, Equatable {
    /// Its name.
    public var name: String
    /// The trigger and the actions as JSON (docs/events.md).
    public var triggerJSON: String, actionsJSON: String
    /// The file line it came from.
    public var line: Int
    /// A description.
    public var description: String?
    /// false deploys it paused.
    public var enabled = true
}

/// Parses pgflow.yaml (no database needed: every value is checked here, the rest by SQL on deploy).
public enum DeploymentFile {
    /// Reads and parses a file.
    public static func load(path: String) throws(DeploymentFileError) -> [DeploymentEntry] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DeploymentFileError("cannot read \(path): pass --file PATH to a pgflow.yaml")
        }
        return try parse(text, file: path)
    }

    /// Parses a file's text; errors name `file` and the line.
    public static func parse(_ text: String, file: String) throws(DeploymentFileError) -> [DeploymentEntry] {
        do {
            return try parseEntries(text, file: file)
        } catch let error as DeploymentFileError {
            throw error
        } catch {
            throw DeploymentFileError("\(file): \(error)")
        }
    }

    private static func parseEntries(_ text: String, file: String) throws -> [DeploymentEntry] {
        func fail(_ node: Node?, _ message: String) -> DeploymentFileError {
            DeploymentFileError("\(file):\(node?.mark?.line ?? 1): \(message)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw DeploymentFileError("\(file): invalid YAML: \(String(describing: error).split(separator: "\n").joined(separator: " "))")
        }
        if root?["deployments"] == nil, root?["automations"] != nil { return [] }
        guard let list = root?["deployments"], let items = list.sequence else {
            throw fail(root, "expected a top-level `deployments:` list")
        }
        var entries: [DeploymentEntry] = []
        for item in items {
            guard let map = item.mapping else { throw fail(item, "each deployment is a mapping with name and entrypoint") }
            let known: Set<String> = ["name", "entrypoint", "parameters", "work_queue", "queue", "tags", "description", "version",
                                      "concurrency_limit", "concurrency", "collision_strategy", "retries", "retry_delay", "retry_delays",
                                      "retry_backoff", "retry_jitter", "paused", "missed_runs", "timeout_seconds", "timeout", "schedules", "schedule",
                                      "env", "triggers"]
            for key in map.keys where !known.contains(key.string ?? "") {
                throw fail(key, "unknown deployment key `\(key.string ?? "?")`; known: \(known.sorted().joined(separator: ", "))")
            }
            guard let name = item["name"]?.string, name.contains("/") else {
                throw fail(item["name"] ?? item, "a deployment needs `name: flow/deployment`")
            }
            let parts = name.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw fail(item["name"], "name \"\(name)\" is not flow/deployment") }
            guard let entrypoint = item["entrypoint"]?.string, !entrypoint.isEmpty else {
                throw fail(item, "deployment \(name) needs an `entrypoint:` (a command, or swift:NAME)")
            }
            var spec = DeploymentSpec(flow: parts[0], name: parts[1], entrypoint: entrypoint)
            if let p = item["parameters"] {
                guard p.mapping != nil else { throw fail(p, "parameters must be a mapping") }
                spec.parametersJSON = try json(p)
            }
            if let q = item["work_queue"] ?? item["queue"] { spec.workQueue = try string(q, "work_queue", fail) }
            if let t = item["tags"] {
                guard let seq = t.sequence else { throw fail(t, "tags must be a list") }
                spec.tags = try seq.map { try string($0, "a tag", fail) }
            }
            spec.description = try item["description"].map { try string($0, "description", fail) }
            spec.version = try item["version"].map { try string($0, "version", fail) }
            if let l = item["concurrency_limit"] ?? item["concurrency"] { spec.concurrencyLimit = try int(l, "concurrency_limit", fail) }
            if let s = item["collision_strategy"] { spec.collisionStrategy = try string(s, "collision_strategy", fail).uppercased() }
            if let r = item["retries"] { spec.retries = try int(r, "retries", fail) }
            if let d = item["retry_delay"] { spec.retryDelays = [try number(d, "retry_delay", fail)] }
            if let d = item["retry_delays"] {
                guard let seq = d.sequence else { throw fail(d, "retry_delays must be a list of seconds") }
                spec.retryDelays = try seq.map { try number($0, "a retry delay", fail) }
                if item["retry_backoff"] == nil && spec.retryDelays.count > 1 { spec.retryBackoff = "list" }
            }
            if let b = item["retry_backoff"] { spec.retryBackoff = try string(b, "retry_backoff", fail) }
            if let j = item["retry_jitter"] { spec.retryJitter = try number(j, "retry_jitter", fail) }
            if let p = item["paused"] {
                guard let b = p.bool else { throw fail(p, "paused must be true or false") }
                spec.paused = b
            }
            if let m = item["missed_runs"] {
                guard let policy = MissedRunPolicy(text: m.string ?? "") else { throw fail(m, "missed_runs must be run_all, latest or skip") }
                spec.missedRunPolicy = policy
            }
            if let t = item["timeout_seconds"] ?? item["timeout"] {
                let seconds = try number(t, "timeout_seconds", fail)
                guard seconds > 0 else { throw fail(t, "timeout_seconds must be more than 0 (leave it out for no timeout)") }
                spec.timeoutSeconds = seconds
            }
            var scheduleNodes: [Node] = []
            if let s = item["schedules"] {
                guard let seq = s.sequence else { throw fail(s, "schedules must be a list") }
                scheduleNodes = Array(seq)
            }
            if let s = item["schedule"] { scheduleNodes.append(s) }
            let schedules = try scheduleNodes.map { try schedule($0, fail) }
            var entry = DeploymentEntry(spec: spec, schedules: schedules, line: item.mark?.line ?? 1)
            if let env = item["env"] { entry.secretEnvironmentJSON = try secretEnvironment(env, fail) }
            if let t = item["triggers"] {
                guard let seq = t.sequence, seq.allSatisfy({ $0.mapping != nil }) else {
                    throw fail(t, "triggers must be a list of mappings, such as - {type: flow-run-state, deployment: etl/extract, states: [Completed]}")
                }
                entry.triggersJSON = try json(t)
            }
            entries.append(entry)
        }
        return entries
    }

    private static func schedule(_ node: Node, _ fail: (Node?, String) -> DeploymentFileError) throws -> ScheduleSpec {
        guard let map = node.mapping else { throw fail(node, "a schedule is a mapping with one of cron, interval, rrule") }
        let known: Set<String> = ["cron", "interval", "rrule", "timezone", "parameters", "active", "anchor_date"]
        for key in map.keys where !known.contains(key.string ?? "") {
            throw fail(key, "unknown schedule key `\(key.string ?? "?")`; known: \(known.sorted().joined(separator: ", "))")
        }
        let kinds = ["cron", "interval", "rrule"].filter { node[$0] != nil }
        guard kinds.count == 1, let kind = kinds.first, let value = node[kind], let expression = value.string else {
            throw fail(node, "a schedule has exactly one of cron, interval, rrule")
        }
        let zone = try node["timezone"].map { try string($0, "timezone", fail) } ?? "UTC"
        var anchor: Date?
        if let a = node["anchor_date"] {
            guard let text = a.string, let date = AnchorDate.parse(text, timeZone: zone) else {
                throw fail(a, "anchor_date must be a time such as 2026-01-01T00:00:00 (in the schedule's timezone) or 2026-01-01T00:00:00Z")
            }
            anchor = date
        }
        var spec: ScheduleSpec
        do {
            let parsed = try Schedule(kind: kind, expression: expression, timeZone: zone, anchor: anchor)
            if case .interval(let interval) = parsed {
                spec = ScheduleSpec(kind: kind, expression: "\(interval.interval) seconds")
            } else {
                spec = ScheduleSpec(kind: kind, expression: expression)
            }
        } catch {
            throw fail(error == .unknownTimeZone(zone) ? node["timezone"] : value, error.description)
        }
        spec.timeZone = zone
        spec.anchorDate = anchor
        if let p = node["parameters"] {
            guard p.mapping != nil else { throw fail(p, "schedule parameters must be a mapping") }
            spec.parametersJSON = try json(p)
        }
        if let a = node["active"] {
            guard let b = a.bool else { throw fail(a, "active must be true or false") }
            spec.active = b
        }
        return spec
    }

    /// The top-level `automations:` of a file's text (none when it has no such key).
    public static func automations(_ text: String, file: String) throws(DeploymentFileError) -> [AutomationEntry] {
        func fail(_ node: Node?, _ message: String) -> DeploymentFileError {
            DeploymentFileError("\(file):\(node?.mark?.line ?? 1): \(message)")
        }
        do {
            guard let list = try Yams.compose(yaml: text)?["automations"] else { return [] }
            guard let items = list.sequence else { throw fail(list, "automations must be a list") }
            return try items.map { item in
                guard let map = item.mapping else { throw fail(item, "each automation is a mapping with name, trigger and actions") }
                let known: Set<String> = ["name", "description", "trigger", "actions", "enabled"]
                for key in map.keys where !known.contains(key.string ?? "") {
                    throw fail(key, "unknown automation key `\(key.string ?? "?")`; known: \(known.sorted().joined(separator: ", "))")
                }
                guard let name = item["name"]?.string else { throw fail(item, "an automation needs a `name:`") }
                guard let trigger = item["trigger"], trigger.mapping != nil else { throw fail(item, "automation \(name) needs a `trigger:` mapping") }
                guard let actions = item["actions"], actions.sequence != nil else { throw fail(item, "automation \(name) needs an `actions:` list") }
                var entry = AutomationEntry(name: name, triggerJSON: try json(trigger), actionsJSON: try json(actions), line: item.mark?.line ?? 1)
                entry.description = item["description"]?.string
                if let e = item["enabled"] {
                    guard let b = e.bool else { throw fail(e, "enabled must be true or false") }
                    entry.enabled = b
                }
                return entry
            }
        } catch let error as DeploymentFileError {
            throw error
        } catch {
            throw DeploymentFileError("\(file): invalid YAML: \(String(describing: error).split(separator: "\n").joined(separator: " "))")
        }
    }

    /// `env:` — a mapping of environment variable names to `{secret: NAME}`; plain values are refused
    /// (only secrets reach a command's environment this way).
    private static func secretEnvironment(_ node: Node, _ fail: (Node?, String) -> DeploymentFileError) throws -> String {
        guard let map = node.mapping else { throw fail(node, "env must be a mapping of VARIABLE: {secret: NAME}") }
        var env: [String: [String: String]] = [:]
        for (key, value) in map {
            let variable = try string(key, "an environment variable name", fail)
            guard let secret = value["secret"]?.string, value.mapping?.count == 1 else {
                throw fail(value, "env \(variable) must be {secret: NAME} (plain values are not supported: set a secret with `pgflow secret set NAME`)")
            }
            env[variable] = ["secret": secret]
        }
        let data = try JSONSerialization.data(withJSONObject: env, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    private static func string(_ node: Node, _ what: String, _ fail: (Node?, String) -> DeploymentFileError) throws -> String {
        guard node.scalar != nil, let s = node.string else { throw fail(node, "\(what) must be text") }
        return s
    }

    private static func int(_ node: Node, _ what: String, _ fail: (Node?, String) -> DeploymentFileError) throws -> Int {
        guard let i = node.int else { throw fail(node, "\(what) must be a whole number, got \(node.string ?? "a structure")") }
        return i
    }

    private static func number(_ node: Node, _ what: String, _ fail: (Node?, String) -> DeploymentFileError) throws -> Double {
        guard let d = node.float ?? node.int.map(Double.init) else { throw fail(node, "\(what) must be a number of seconds") }
        return d
    }

    /// A YAML (or JSON) document holding a mapping, as JSON text; nil when the text is not YAML or its
    /// top level is not a mapping (block documents and block type schemas are read this way).
    public static func mappingJSON(fromYAML text: String) throws -> String? {
        guard let node = try Yams.compose(yaml: text), case .mapping = node else { return nil }
        return try json(node)
    }

    /// A YAML node as JSON text (mappings, lists, and scalars typed the YAML way).
    public static func json(_ node: Node) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: jsonObject(node), options: [.sortedKeys, .fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }

    private static func jsonObject(_ node: Node) -> Any {
        switch node {
        case .mapping(let m):
            var object: [String: Any] = [:]
            for (k, v) in m { object[k.string ?? ""] = jsonObject(v) }
            return object
        case .sequence(let s):
            return s.map(jsonObject)
        case .scalar(let s):
            if s.style == .plain || s.style == .any {
                if node.null != nil { return NSNull() }
                if let b = node.bool { return b }
                if let i = node.int { return i }
                if let d = node.float { return d }
            }
            return s.string
        }
    }
}
