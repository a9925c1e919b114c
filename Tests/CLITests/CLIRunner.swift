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

    /// The built `pgflow`, next to the test bundle (or in $PGFLOW_BIN_DIR).
    static var binary: URL { TestProcess.binDirectory.appendingPathComponent("pgflow") }

    static func with<T>(_ body: (CLI) async throws -> T) async throws -> T {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw PostgresError(kind: .usage, message: "no pgflow binary at \(binary.path): run `swift build` first (or set PGFLOW_BIN_DIR)")
        }
        return try await TestDatabase.with { try await body(CLI(db: $0)) }
    }

    /// A `pgflow arguments` process with the database in PGFLOW_DATABASE_URL (not started).
    func process(_ arguments: [String], directory: URL? = nil, environment: [String: String] = [:]) -> Process {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["PGFLOW_DATABASE_URL"] = db.conninfo
        env["PGFLOW_SQL_DIR"] = TestDatabase.repositoryRoot.appendingPathComponent("sql").path
        env.merge(environment) { $1 }
        process.environment = env
        if let directory { process.currentDirectoryURL = directory }
        return process
    }

    /// Starts `pgflow arguments` (a long-running command) with its output in pipes.
    func start(_ arguments: [String], directory: URL? = nil) throws -> (Process, Pipe, Pipe) {
        let process = process(arguments, directory: directory)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    /// Runs `pgflow arguments` to the end.
    @discardableResult
    func run(_ arguments: String...) async throws -> CLIResult { try await run(arguments) }

    /// Runs `pgflow arguments` to the end without blocking a thread of Swift's cooperative pool (other
    /// tests run in-process agents that need those threads): input and output go through files, the
    /// exit is awaited.
    @discardableResult
    func run(_ arguments: [String], directory: URL? = nil, environment: [String: String] = [:], stdin: String = "") async throws -> CLIResult {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-cli-\(UUID().uuidString)")
        let inURL = base.appendingPathExtension("in"), outURL = base.appendingPathExtension("out"), errURL = base.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: inURL.path, contents: Data(stdin.utf8))
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { for url in [inURL, outURL, errURL] { try? FileManager.default.removeItem(at: url) } }
        let process = process(arguments, directory: directory, environment: environment)
        let inHandle = try FileHandle(forReadingFrom: inURL)
        let outHandle = try FileHandle(forWritingTo: outURL), errHandle = try FileHandle(forWritingTo: errURL)
        process.standardInput = inHandle
        process.standardOutput = outHandle
        process.standardError = errHandle
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        for handle in [inHandle, outHandle, errHandle] { try? handle.close() }
        return CLIResult(status: status, stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
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

/// Waits for a started process to exit without blocking a cooperative thread. A process still running
/// at the deadline is killed (so that reading its output afterwards cannot block forever) and the
/// answer is false.
func exited(_ process: Process, timeout: Double = 60) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        return false
    }
    return true
}
