// PGFlowClient: typed calls of pgflow's SQL API, and the schema migrator.
import Foundation
import PGFlowPostgres

/// Brings a database to the current pgflow schema.
///
/// A database without pgflow gets `sql/schema.sql` (which records every migration it contains); one
/// with an older pgflow gets the numbered files of `sql/migrations/` that it lacks, in order. All of it
/// runs in one transaction under an advisory lock (the same key as `scripts/apply-schema.sh`), so
/// concurrent upgrades are safe and a failing migration changes nothing.
public struct SchemaMigrator: Sendable {
    /// One numbered migration file.
    public struct Migration: Sendable, Equatable {
        /// The number at the start of the file name.
        public let version: Int
        /// The rest of the file name.
        public let name: String
        /// The file's SQL.
        public let sql: String
    }

    /// What a database has and lacks.
    public struct Status: Sendable {
        /// Versions recorded in `pgflow.schema_migrations` (empty: no pgflow here).
        public let applied: [Int]
        /// Migrations not yet applied (all of them for a database without pgflow).
        public let pending: [Migration]
    }

    /// The advisory lock key shared with scripts/apply-schema.sh.
    public static let lockKey: Int64 = 7_286_550_214_002_711

    /// The whole current schema.
    public let schemaSQL: String
    /// The migrations, by version.
    public let migrations: [Migration]

    /// Reads `schema.sql` and `migrations/NNNN_name.sql` from a folder.
    public init(sqlDirectory: URL) throws {
        let schemaURL = sqlDirectory.appendingPathComponent("schema.sql")
        guard let schema = try? String(contentsOf: schemaURL, encoding: .utf8) else {
            throw PGFlowError.setup("cannot read \(schemaURL.path): set PGFLOW_SQL_DIR to the folder holding pgflow's schema.sql")
        }
        schemaSQL = schema
        let folder = sqlDirectory.appendingPathComponent("migrations")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        migrations = try files.filter { $0.hasSuffix(".sql") }.sorted().map { file in
            let base = String(file.dropLast(4))
            guard let underscore = base.firstIndex(of: "_"), let version = Int(base[..<underscore]) else {
                throw PGFlowError.setup("migration file \(file) is not named NNNN_name.sql")
            }
            let sql = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            return Migration(version: version, name: String(base[base.index(after: underscore)...]), sql: sql)
        }
    }

    /// Finds the `sql` folder: `PGFLOW_SQL_DIR`, else the nearest `sql/schema.sql` above the executable
    /// or the working directory.
    public static func locateSQLDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        if let dir = environment["PGFLOW_SQL_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        let starts = [
            URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent(),
            URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        ]
        for start in starts {
            var dir = start
            for _ in 0..<8 {
                let candidate = dir.appendingPathComponent("sql")
                if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("schema.sql").path) { return candidate }
                dir = dir.deletingLastPathComponent()
            }
        }
        throw PGFlowError.setup("cannot find pgflow's sql/schema.sql: run from the pgflow checkout or set PGFLOW_SQL_DIR")
    }

    /// What the database has and lacks.
    public func status(_ connection: PostgresConnection) throws -> Status {
        let exists = try connection.query("SELECT to_regclass('pgflow.schema_migrations') IS NOT NULL").scalar(Bool.self)
        guard exists else { return Status(applied: [], pending: migrations) }
        let applied = try connection.query("SELECT version FROM pgflow.schema_migrations ORDER BY version").rows.map { try $0.decode(Int.self, at: 0) }
        return Status(applied: applied, pending: migrations.filter { !applied.contains($0.version) })
    }

    /// Applies what is missing; returns the versions applied (all of them, for a fresh database).
    @discardableResult
    public func upgrade(_ connection: PostgresConnection, progress: (String) -> Void = { _ in }) throws -> [Int] {
        try connection.withTransaction { c in
            try c.query("SELECT pg_advisory_xact_lock($1)", [Self.lockKey])
            let status = try status(c)
            if status.applied.isEmpty {
                progress("applying schema.sql (\(migrations.count) migrations)")
                try c.execute(script: schemaSQL)
                return migrations.map(\.version)
            }
            for m in status.pending {
                progress("applying migration \(String(format: "%04d", m.version))_\(m.name)")
                try apply(m, c)
            }
            return status.pending.map(\.version)
        }
    }

    /// Applies every migration in order to a database without pgflow, ignoring schema.sql (to prove
    /// that both paths give the same catalog).
    public func applyAllMigrations(_ connection: PostgresConnection) throws {
        try connection.withTransaction { c in
            for m in migrations { try apply(m, c) }
        }
    }

    private func apply(_ m: Migration, _ c: PostgresConnection) throws {
        do {
            try c.execute(script: m.sql)
        } catch let error as PostgresError {
            throw PGFlowError.setup("migration \(m.version) (\(m.name)) failed, nothing was changed: \(error)")
        }
        try c.query("INSERT INTO pgflow.schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name])
    }
}
