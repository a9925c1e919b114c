// The migration mechanism against a real PostgreSQL.
import Foundation
import PGFlowClient
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct SchemaMigratorTests {
    let migrator: SchemaMigrator

    init() throws {
        migrator = SchemaMigrator()
    }

    /// Every object of schema `pgflow`, in a form that two equal schemas print identically.
    static func catalog(_ c: PostgresConnection) throws -> [String] {
        let sql = """
            SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                   || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                   || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE n.nspname = 'pgflow' AND a.attnum > 0 AND NOT a.attisdropped
            UNION ALL SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgflow'
            UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'pgflow'
            UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
              FROM pg_constraint WHERE connamespace = 'pgflow'::regnamespace
            UNION ALL SELECT 'function ' || pg_get_functiondef(p.oid)
              FROM pg_proc p WHERE p.pronamespace = 'pgflow'::regnamespace AND p.prokind IN ('f', 'p')
            UNION ALL SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'pgflow'
            UNION ALL SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = 'pgflow'::regnamespace AND NOT t.tgisinternal
            UNION ALL SELECT 'type ' || t.typname || ' ' || coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid), '')
              FROM pg_type t WHERE t.typnamespace = 'pgflow'::regnamespace AND t.typtype IN ('e', 'd', 'c')
            UNION ALL SELECT 'migration ' || version || ' ' || name FROM pgflow.schema_migrations
            """
        return try c.query(sql).rows.map { try $0.decode(String.self, at: 0) }.sorted()
    }

    @Test func schemaFileEqualsAllMigrationsInOrder() async throws {
        try await TestDatabase.with(schema: false) { fresh in
            try await TestDatabase.with(schema: false) { migrated in
                let a = try fresh.connect()
                try a.execute(script: try TestDatabase.repositoryFile("sql/schema.sql"))
                let b = try migrated.connect()
                #expect(try migrator.upgrade(b) == migrator.migrations.map(\.version))
                let left = try Self.catalog(a), right = try Self.catalog(b)
                #expect(left.count > 5)
                #expect(left.filter { !right.contains($0) } == [], "only after schema.sql")
                #expect(right.filter { !left.contains($0) } == [], "only after the migrations")
            }
        }
    }

    @Test func upgradeAppliesOnlyWhatIsMissingAndIsIdempotent() async throws {
        try await TestDatabase.with(schema: false) { db in
            let c = try db.connect()
            let first = try #require(migrator.migrations.first)
            // An "old" database: only the first migration.
            try c.execute(script: first.sql)
            try c.query("INSERT INTO pgflow.schema_migrations (version, name) VALUES ($1, $2)", [first.version, first.name])
            #expect(try migrator.status(c).pending.map(\.version) == migrator.migrations.dropFirst().map(\.version))
            #expect(try migrator.upgrade(c) == migrator.migrations.dropFirst().map(\.version))
            #expect(try migrator.upgrade(c) == [])
            #expect(try migrator.status(c).pending.isEmpty)
        }
    }

    @Test func failingMigrationChangesNothing() async throws {
        try await TestDatabase.with(schema: false) { db in
            let c = try db.connect()
            try migrator.upgrade(c)
            let broken = SchemaMigrator(migrations: migrator.migrations + [
                .init(version: 9999, name: "broken", sql: "CREATE TABLE pgflow.half_done (x int); SELECT 1/0;")])
            #expect(throws: PGFlowError.self) { try broken.upgrade(c) }
            #expect(try c.query("SELECT to_regclass('pgflow.half_done') IS NULL").scalar(Bool.self))
            #expect(try broken.status(c).pending.map(\.version) == [9999])
        }
    }
}
