// DeploymentSettings: `pgflow deployment set` options as the JSON object pgflow.update_deployment takes
// (keys as in pgflow.yaml). Values are passed on as given: PostgreSQL validates them and says why.
import Foundation

/// Builds the settings object of `pgflow.update_deployment`.
public enum DeploymentSettings {
    /// The JSON object text; at least one setting must be given.
    public static func json(
        entrypoint: String? = nil, parametersJSON: String? = nil, workQueue: String? = nil, tags: String? = nil,
        description: String? = nil, version: String? = nil, concurrencyLimit: String? = nil, collisionStrategy: String? = nil,
        retries: Int? = nil, retryDelays: String? = nil, retryBackoff: String? = nil, retryJitter: Double? = nil,
        timeout: String? = nil, missedRuns: String? = nil
    ) throws -> String {
        var object: [String: Any] = [:]
        object["entrypoint"] = entrypoint
        if let parametersJSON {
            guard let value = try? JSONSerialization.jsonObject(with: Data(parametersJSON.utf8)), value is [String: Any] else {
                throw CLIError.invalid("--params must be a JSON object such as '{\"day\": \"today\"}'")
            }
            object["parameters"] = value
        }
        object["work_queue"] = workQueue
        if let tags { object["tags"] = tags.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        object["description"] = description
        object["version"] = version
        if let concurrencyLimit { object["concurrency_limit"] = try numberOrNone(concurrencyLimit, "--concurrency-limit", whole: true) }
        object["collision_strategy"] = collisionStrategy
        object["retries"] = retries
        if let retryDelays {
            object["retry_delays"] = try retryDelays.split(separator: ",").map { part -> Double in
                guard let d = Double(part.trimmingCharacters(in: .whitespaces)) else {
                    throw CLIError.invalid("bad --retry-delays \"\(retryDelays)\": use seconds separated by commas, e.g. 10,60,300")
                }
                return d
            }
        }
        object["retry_backoff"] = retryBackoff
        object["retry_jitter"] = retryJitter
        if let timeout { object["timeout_seconds"] = try numberOrNone(timeout, "--timeout", whole: false) }
        if let missedRuns { object["missed_run_policy"] = missedRuns == "default" ? NSNull() : missedRuns.replacingOccurrences(of: "-", with: "_") }
        guard !object.isEmpty else { throw CLIError.invalid("nothing to change: give a setting, e.g. --timeout 600 (see --help)") }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    private static func numberOrNone(_ text: String, _ option: String, whole: Bool) throws -> Any {
        if text.lowercased() == "none" { return NSNull() }
        if whole, let n = Int(text) { return n }
        if !whole, let d = TimeArguments.seconds(text) ?? Double(text) { return d }
        throw CLIError.invalid("bad \(option) \"\(text)\": give a \(whole ? "whole number" : "number of seconds (or 10m, 2h)") or none")
    }
}
