import Foundation

/// Where to connect: a libpq conninfo string or `postgresql://` URI.
public struct PostgresConfiguration: Sendable, Equatable {
    /// The conninfo string or URI (empty: libpq's `PG*` environment variables and defaults).
    public var conninfo: String
    /// The `application_name` shown in `pg_stat_activity` unless the conninfo sets one.
    public var applicationName: String
    /// Seconds to wait for a connection before giving up.
    public var connectTimeout: Int
    /// Whether statements are prepared once per session and reused (named prepared statements; the
    /// default). Off, every statement is parsed each time (unnamed statements): what a transaction-mode
    /// PgBouncer older than 1.21 (or without `max_prepared_statements`) needs, since it hands each
    /// transaction any server session. Default: on, unless `PGFLOW_PREPARED_STATEMENTS` is `off`, `0` or `false`.
    public var preparedStatements: Bool

    /// Creates a configuration from a conninfo string or URI (`preparedStatements` from the environment).
    public init(_ conninfo: String, applicationName: String = "pgflow", connectTimeout: Int = 10) {
        self.conninfo = conninfo
        self.applicationName = applicationName
        self.connectTimeout = connectTimeout
        self.preparedStatements = Self.preparedStatementsFromEnvironment()
    }

    /// False when `PGFLOW_PREPARED_STATEMENTS` is `off`, `0` or `false` (any case), else true.
    public static func preparedStatementsFromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        !["off", "0", "false"].contains(environment["PGFLOW_PREPARED_STATEMENTS"]?.lowercased() ?? "")
    }

    /// `PGFLOW_DATABASE_URL`, else libpq's `PG*` variables (`PGHOST`, `PGPORT`, `PGDATABASE`, …).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment,
        applicationName: String = "pgflow"
    ) -> PostgresConfiguration {
        PostgresConfiguration(environment["PGFLOW_DATABASE_URL"] ?? "", applicationName: applicationName)
    }
}

import CLibPQ

extension PostgresConfiguration {
    /// The same server and credentials with another database: a keyword conninfo built from the parsed
    /// original (works for URIs and keyword strings alike).
    public func replacingDatabase(_ database: String) throws -> PostgresConfiguration {
        var copy = self
        copy.conninfo = try Self.conninfo(from: Self.parse(conninfo).merging(["dbname": database]) { $1 })
        return copy
    }

    /// The conninfo's explicitly given keywords (URI or keyword form).
    static func parse(_ conninfo: String) throws -> [String: String] {
        if conninfo.isEmpty { return [:] }
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &error) else {
            let message = error.map { String(cString: $0) } ?? "malformed"
            if let error { PQfreemem(error) }
            throw PostgresError(kind: .usage, message: "invalid database URL: \(PostgresConnection.firstLine(message))")
        }
        defer { PQconninfoFree(options) }
        var result: [String: String] = [:]
        var p = options
        while let keyword = p.pointee.keyword {
            if let value = p.pointee.val { result[String(cString: keyword)] = String(cString: value) }
            p += 1
        }
        return result
    }

    /// `key='value' …` with libpq's quoting rules (backslash-escaped `'` and `\`).
    static func conninfo(from options: [String: String]) -> String {
        options.sorted { $0.key < $1.key }.map { key, value in
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            return "\(key)='\(escaped)'"
        }.joined(separator: " ")
    }
}
