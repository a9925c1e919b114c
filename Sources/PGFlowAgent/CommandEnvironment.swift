import Foundation
import PGFlowClient

/// The environment a command run gets: not the agent's (which holds its database password), but an
/// allowlist of the agent's variables, the ones named by `--pass-env`, and the run's own:
///
/// - `PGFLOW_FLOW_RUN_ID`, `PGFLOW_FLOW_RUN_NAME`, `PGFLOW_RUN_COUNT`;
/// - `PGFLOW_PARAMETERS_FILE`: a file holding the parameters (JSON), removed after the run;
/// - `PGFLOW_PARAMETERS`: the parameters themselves, only when at most `CommandParameters.inlineLimit`
///   bytes (the kernel limits a single variable to 128 KiB); they also arrive on stdin;
/// - `PGFLOW_DATABASE_URL`: `--command-database-url`, else the agent's own URL.
enum CommandEnvironment {
    /// Variables of the agent passed on to every command (also every `LC_*`).
    static let allowed: Set<String> = ["PATH", "HOME", "LANG", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL"]

    /// The environment for one run.
    static func build(
        for run: ClaimedFlowRun, runCount: Int, parameters: CommandParameters, configuration: AgentConfiguration,
        agentEnvironment: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String: String] {
        let passed = allowed.union(configuration.passEnvironment)
        var environment = agentEnvironment.filter { passed.contains($0.key) || $0.key.hasPrefix("LC_") }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        environment["PGFLOW_FLOW_RUN_ID"] = run.id.uuidString.lowercased()
        environment["PGFLOW_FLOW_RUN_NAME"] = run.name
        environment["PGFLOW_RUN_COUNT"] = String(runCount)
        environment["PGFLOW_PARAMETERS_FILE"] = parameters.path
        if let inline = parameters.inline { environment["PGFLOW_PARAMETERS"] = inline }
        let url = configuration.commandDatabaseURL ?? configuration.databaseURL
        if !url.isEmpty { environment["PGFLOW_DATABASE_URL"] = url }
        return environment
    }
}

/// A run's parameters written to a private file for its command (removed with `remove()`).
struct CommandParameters {
    /// Parameters up to this many bytes also go in `PGFLOW_PARAMETERS` (32 KiB).
    static let inlineLimit = 32 * 1024

    /// The file's path.
    let path: String
    /// The parameters when small enough for the environment.
    let inline: String?

    /// Writes the file (mode 0600) in the temporary directory.
    init(json: String) throws {
        let path = NSTemporaryDirectory() + "pgflow-parameters-\(UUID().uuidString.lowercased()).json"
        guard FileManager.default.createFile(atPath: path, contents: Data(json.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw SpawnError(message: "cannot write the parameters file \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.inline = json.utf8.count <= Self.inlineLimit ? json : nil
    }

    /// Deletes the file.
    func remove() { unlink(path) }
}
