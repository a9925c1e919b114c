// PGFlowClient: typed calls of pgflow's SQL API, and the schema migrator.
import Foundation
import PGFlowPostgres

/// Brings a database to the current pgflow schema.
///
/// The migrations are the schema's one source (`sql/migrations/NNNN_name.sql`, embedded in the binary by
/// `scripts/gen-sql.sh`, which also writes `sql/schema.sql` as their concatenation for psql users). A
/// database gets the migrations it lacks, in order — all of them when it has no pgflow yet — in one
/// transaction under an advisory lock, so concurrent upgrades are safe and a failing migration changes
/// nothing. `scripts/apply-schema.sh` calls `pgflow db upgrade`, so this is the only migrator.
public struct SchemaMigrator: Sendable {
    /// One numbered migration.
    public struct Migration: Sendable, Equatable {
        /// The number at the start of the file name.
        public let version: Int
        /// The rest of the file name.
        public let name: String
        /// The file's SQL.
        public let sql: String

        /// A migration (the generated `embeddedMigrations` list, or a test's own).
        public init(version: Int, name: String, sql: String) {
            self.version = version
            self.name = name
            self.sql = sql
        }
    }

    /// What a database has and lacks.
    public struct Status: Sendable {
        /// Versions recorded in `pgflow.schema_migrations` (empty: no pgflow here).
        public let applied: [Int]
        /// Migrations not yet applied (all of them for a database without pgflow).
        public let pending: [Migration]
    }

    /// The advisory lock key every upgrade takes.
    public static let lockKey: Int64 = 7_286_550_214_002_711

    /// The migrations, by version.
    public let migrations: [Migration]

    /// The migrations built into this binary.
    public init() { self.init(migrations: Self.embeddedMigrations) }

    /// A migrator over the given migrations (sorted by version).
    public init(migrations: [Migration]) { self.migrations = migrations.sorted { $0.version < $1.version } }

    /// What the database has and lacks.
    public func status(_ connection: PostgresConnection) throws -> Status {
        let exists = try connection.query("SELECT to_regclass('pgflow.schema_migrations') IS NOT NULL").scalar(Bool.self)
        guard exists else { return Status(applied: [], pending: migrations) }
        let applied = try connection.query("SELECT version FROM pgflow.schema_migrations ORDER BY version").rows.map { try $0.decode(Int.self, at: 0) }
        return Status(applied: applied, pending: migrations.filter { !applied.contains($0.version) })
    }

    /// Applies what is missing (everything, for a database without pgflow); returns the versions applied.
    @discardableResult
    public func upgrade(_ connection: PostgresConnection, progress: (String) -> Void = { _ in }) throws -> [Int] {
        try connection.withTransaction { c in
            try lock(c)
            let pending = try status(c).pending
            for m in pending {
                progress("applying migration \(String(format: "%04d", m.version))_\(m.name)")
                try apply(m, c)
            }
            return pending.map(\.version)
        }
    }

    /// Drops schema `pgflow` with all its data and applies every migration afresh, in one transaction.
    @discardableResult
    public func reset(_ connection: PostgresConnection) throws -> [Int] {
        try connection.withTransaction { c in
            try lock(c)
            try c.execute(script: "DROP SCHEMA IF EXISTS pgflow CASCADE")
            for m in migrations { try apply(m, c) }
            return migrations.map(\.version)
        }
    }

    private func lock(_ c: PostgresConnection) throws {
        try c.query("SELECT pg_advisory_xact_lock($1)", [Self.lockKey])
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
