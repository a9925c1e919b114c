// Runs the built `pgflow` binary (next to the test bundle, or in $PGFLOW_BIN_DIR) against a test database.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport

/// What one command printed and how it exited.
struct CLIResult: CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String
    var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// A database plus the binary, for one test.
struct CLI {
    let db: TestDatabase

    static var binary: URL {
        if let dir = ProcessInfo.processInfo.environment["PGFLOW_BIN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir).appendingPathComponent("pgflow")
        }
        let bundle = Bundle.main.bundleURL
        for dir in [bundle, bundle.deletingLastPathComponent(), bundle.deletingLastPathComponent().deletingLastPathComponent()] {
            let candidate = dir.appendingPathComponent("pgflow")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return bundle.deletingLastPathComponent().appendingPathComponent("pgflow")
    }

    static func with<T>(_ body: (CLI) async throws -> T) async throws -> T {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw PostgresError(kind: .usage, message: "no pgflow binary at \(binary.path): run `swift build` first (or set PGFLOW_BIN_DIR)")
        }
        return try await TestDatabase.with { try await body(CLI(db: $0)) }
    }

    /// Starts `pgflow arguments` with the database in PGFLOW_DATABASE_URL.
    func start(_ arguments: [String], directory: URL? = nil) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["PGFLOW_DATABASE_URL"] = db.conninfo
        env["PGFLOW_SQL_DIR"] = TestDatabase.repositoryRoot.appendingPathComponent("sql").path
        process.environment = env
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    /// Runs `pgflow arguments` to the end.
    @discardableResult
    func run(_ arguments: String...) throws -> CLIResult { try run(arguments) }

    /// Runs `pgflow arguments` to the end.
    @discardableResult
    func run(_ arguments: [String], directory: URL? = nil) throws -> CLIResult {
        let (process, out, err) = try start(arguments, directory: directory)
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLIResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// One value from the database.
    func scalar<T: PostgresDecodable>(_ sql: String, _ parameters: [(any PostgresEncodable)?] = [], as: T.Type = T.self) throws -> T {
        try db.connect().query(sql, parameters).scalar(T.self)
    }

    /// Runs SQL for setup.
    @discardableResult
    func sql(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) throws -> PostgresResult {
        try db.connect().query(sql, parameters)
    }

    /// Writes a pgflow.yaml into a new folder; returns its path.
    func yaml(_ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("pgflow.yaml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }
}

/// Polls `condition` every 20 ms for up to `timeout` seconds; returns whether it held.
func waitFor(timeout: Double, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}
