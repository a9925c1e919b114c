// Test support: every test gets its own PostgreSQL database, cloned from a template that has
// sql/schema.sql applied. The template's name carries a hash of schema.sql, so a changed schema gets a
// fresh template and a stale one is never used. Needs a running server: `scripts/test.sh` starts one
// (or `scripts/db.sh up`); `PGFLOW_TEST_ADMIN_URL` overrides where it is.
import Foundation
import PGFlowPostgres

/// A throwaway database for one test.
public struct TestDatabase: Sendable {
    /// The database's name.
    public let name: String
    /// How to connect to it.
    public let configuration: PostgresConfiguration

    /// The repository root (found from this file's path).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The admin connection settings: `PGFLOW_TEST_ADMIN_URL`, else the local cluster of `scripts/db.sh`.
    public static func adminConfiguration() throws -> PostgresConfiguration {
        if let url = ProcessInfo.processInfo.environment["PGFLOW_TEST_ADMIN_URL"], !url.isEmpty {
            return PostgresConfiguration(url, applicationName: "pgflow-tests")
        }
        let file = repositoryRoot.appendingPathComponent(".pgflow/admin-url")
        guard let url = try? String(contentsOf: file, encoding: .utf8) else {
            throw PostgresError(kind: .usage, message: "no test database server: run `scripts/db.sh up` (or scripts/test.sh), or set PGFLOW_TEST_ADMIN_URL")
        }
        return PostgresConfiguration(url.trimmingCharacters(in: .whitespacesAndNewlines), applicationName: "pgflow-tests")
    }

    /// Runs `body` with a new database holding the current schema (or an empty one), dropped afterwards.
    ///
    /// Creating and dropping block (CREATE DATABASE, and on a fresh checkout the template's schema, behind
    /// a lock every other test waits on): that happens on a thread of its own, never on Swift's
    /// cooperative pool, which tests running an agent in-process need to make progress.
    public static func with<T>(schema: Bool = true, _ body: (TestDatabase) async throws -> T) async throws -> T {
        let db = try await offPool { try create(schema: schema) }
        do {
            let value = try await body(db)
            _ = try? await offPool { try db.drop() }
            return value
        } catch {
            _ = try? await offPool { try db.drop() }
            throw error
        }
    }

    /// Runs blocking work on a new thread and awaits it.
    public static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// Creates a new database (blocking; tests only).
    public static func create(schema: Bool = true) throws -> TestDatabase {
        let admin = try PostgresConnection(configuration: adminConfiguration())
        let name = "pgflow_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let quoted = try admin.quoteIdentifier(String(name))
        if schema {
            let template = try ensureTemplate(admin)
            try admin.execute(script: "CREATE DATABASE \(quoted) TEMPLATE \(try admin.quoteIdentifier(template))")
        } else {
            try admin.execute(script: "CREATE DATABASE \(quoted) TEMPLATE template0")
        }
        return TestDatabase(name: String(name), configuration: try admin.configuration.replacingDatabase(String(name)))
    }

    /// Drops the database, disconnecting whoever is still in it.
    public func drop() throws {
        let admin = try PostgresConnection(configuration: Self.adminConfiguration())
        try admin.execute(script: "DROP DATABASE IF EXISTS \(try admin.quoteIdentifier(name)) WITH (FORCE)")
    }

    /// A new connection to this database (blocking; tests only).
    public func connect() throws -> PostgresConnection {
        try PostgresConnection(configuration: configuration)
    }

    /// A URL-ish conninfo string for subprocesses (`PGFLOW_DATABASE_URL`).
    public var conninfo: String { configuration.conninfo }

    /// The text of a file in the repository.
    public static func repositoryFile(_ path: String) throws -> String {
        try String(contentsOf: repositoryRoot.appendingPathComponent(path), encoding: .utf8)
    }

    private static func ensureTemplate(_ admin: PostgresConnection) throws -> String {
        let schema = try repositoryFile("sql/schema.sql")
        let name = "pgflow_template_" + String(fnv1a(schema), radix: 16)
        try admin.query("SELECT pg_advisory_lock(727001)")  // one builder at a time, across test processes
        defer { _ = try? admin.query("SELECT pg_advisory_unlock(727001)") }
        if try admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]).rows.isEmpty {
            let building = try admin.quoteIdentifier(name + "_building")
            try admin.execute(script: "DROP DATABASE IF EXISTS \(building) WITH (FORCE)")
            try admin.execute(script: "CREATE DATABASE \(building) TEMPLATE template0")
            do {
                let connection = try PostgresConnection(configuration: admin.configuration.replacingDatabase(name + "_building"))
                try connection.execute(script: schema)
            }
            try admin.execute(script: "ALTER DATABASE \(building) RENAME TO \(try admin.quoteIdentifier(name))")
        }
        return name
    }

    private static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}
