// A real pgflow-api process on a free port, for the process tests.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport

/// A running `pgflow-api` and a client for it.
struct APIProcess {
    let process: TestProcess
    let port: Int

    /// Starts `pgflow-api --port 0` on `db` and waits (up to 60 s) for the port it prints.
    static func start(_ db: TestDatabase, _ extra: [String] = []) async throws -> APIProcess {
        try await start(conninfo: db.conninfo, extra)
    }

    /// Starts `pgflow-api --port 0` on the database of `conninfo` and waits (up to 60 s) for its port.
    static func start(conninfo: String, _ extra: [String] = []) async throws -> APIProcess {
        let process = try TestProcess("pgflow-api", ["--host", "127.0.0.1", "--port", "0"] + extra,
                                      environment: ["PGFLOW_DATABASE_URL": conninfo, "PGFLOW_LOG_LEVEL": "info"])
        var port: Int?
        _ = await eventually(timeout: 60) {
            if let line = process.output.components(separatedBy: "\n").first(where: { $0.hasPrefix("pgflow-api: listening on http://127.0.0.1:") }) {
                port = Int(line.split(separator: ":").last ?? "")
            }
            return port != nil || !process.process.isRunning
        }
        guard let port else { throw HTTPTestError("pgflow-api did not start:\n\(process.output)") }
        return APIProcess(process: process, port: port)
    }

    /// A client sending `token`.
    func client(_ token: String? = nil) -> HTTPTestClient { HTTPTestClient(port: port, token: token) }
}

/// A token created in SQL (what `pgflow api token create` calls).
func createToken(_ c: PostgresConnection, _ name: String, _ scope: String) throws -> String {
    try c.query("SELECT pgflow.create_api_token($1, $2)", [name, scope]).scalar(String.self)
}
