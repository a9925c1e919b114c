import CLibPQ
import Foundation

/// One synchronous libpq connection.
///
/// Not thread-safe: use it from one thread at a time. Its calls block, so async code never holds one
/// directly; it gets one inside `PostgresPool.withConnection`, on a thread the pool owns.
/// Statements run through a per-connection cache of prepared statements (unless the configuration
/// turns them off: `PostgresConfiguration.preparedStatements`).
public final class PostgresConnection {
    /// The configuration it connected with.
    public let configuration: PostgresConfiguration
    private(set) var handle: OpaquePointer
    private var statements: [String: String] = [:]
    private var statementCounter = 0

    /// Connects (blocking) and prepares the session: UTC time zone, ISO dates.
    public init(configuration: PostgresConfiguration) throws {
        self.configuration = configuration
        handle = try Self.connect(configuration)
        do {
            try setUpSession()
        } catch {
            PQfinish(handle)
            throw error
        }
    }

    deinit { PQfinish(handle) }

    /// The server's process id for this session (what `pg_terminate_backend` takes).
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// True while libpq believes the connection is usable.
    public var isOpen: Bool { PQstatus(handle) == CONNECTION_OK }

    /// True inside an open transaction block.
    public var inTransaction: Bool {
        let s = PQtransactionStatus(handle)
        return s == PQTRANS_INTRANS || s == PQTRANS_INERROR
    }

    /// The file descriptor of the socket, for readiness polling.
    var socket: Int32 { PQsocket(handle) }

    // MARK: Statements

    /// Runs one statement with bound parameters (text format) and returns its rows.
    ///
    /// The statement is prepared once per connection and reused; every value travels as a parameter,
    /// never spliced into the SQL.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) throws -> PostgresResult {
        guard configuration.preparedStatements else { return try queryUnprepared(sql, parameters) }
        let name = try preparedName(for: sql)
        do {
            return try execPrepared(name, parameters)
        } catch let error as PostgresError where error.sqlState == SQLState.invalidStatementName && !inTransaction {
            statements.removeAll()  // the session lost its statements (DISCARD ALL): prepare again, once
            return try execPrepared(try preparedName(for: sql), parameters)
        }
    }

    /// Runs one statement with bound parameters without preparing it (for statements run once).
    @discardableResult
    public func queryUnprepared(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) throws -> PostgresResult {
        let texts = try Self.texts(parameters)
        let result = Self.withCStrings(texts) { values in
            PQexecParams(handle, sql, Int32(values.count), nil, values, nil, nil, 0)
        }
        return try consume(result)
    }

    /// Runs a script of one or more statements without parameters (schema files, `SET`, `LISTEN`).
    public func execute(script sql: String) throws {
        guard PQsendQuery(handle, sql) == 1 else { throw connectionError("could not send the statement") }
        var firstError: PostgresError?
        while let result = PQgetResult(handle) {
            do { try consume(result) } catch let e as PostgresError { firstError = firstError ?? e }
        }
        if let firstError { throw firstError }
    }

    /// Runs `body` inside `BEGIN` … `COMMIT`, rolling back when it throws.
    public func withTransaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try execute(script: "BEGIN")
        do {
            let value = try body(self)
            try execute(script: "COMMIT")
            return value
        } catch {
            if isOpen { try? execute(script: "ROLLBACK") }
            throw error
        }
    }

    /// Quotes an identifier (a channel or table name) with libpq's own escaping.
    public func quoteIdentifier(_ name: String) throws -> String {
        guard let p = PQescapeIdentifier(handle, name, name.utf8.count) else {
            throw PostgresError(kind: .usage, message: "cannot quote identifier \(name.debugDescription): \(lastMessage)")
        }
        defer { PQfreemem(p) }
        return String(cString: p)
    }

    // MARK: Health

    /// Makes the connection usable again if the server closed it (backend terminated, server restarted).
    ///
    /// Cheap when healthy: a zero-timeout poll of the socket. A closed socket is readable, so a dead
    /// session is noticed before the next statement is sent and the connection is re-established.
    public func ensureHealthy() throws {
        // An idle session has nothing to read; readable means the server sent a goodbye (FATAL) and/or
        // closed the socket. Read until libpq sees the end, or until nothing more is pending.
        var rounds = 0
        while isOpen, rounds < 16 {
            var fd = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            if poll(&fd, 1, rounds == 0 ? 0 : 5) <= 0 {
                if rounds == 0 { return }
                break
            }
            rounds += 1
            if PQconsumeInput(handle) == 0 { break }
            while let n = PQnotifies(handle) { PQfreemem(n) }  // stray notifications on a pooled session
        }
        if isOpen && rounds == 0 { return }
        if isOpen, PQtransactionStatus(handle) == PQTRANS_IDLE, (try? execute(script: "")) != nil { return }
        try reconnect()
    }

    /// Drops the session and connects again with the same configuration.
    public func reconnect() throws {
        statements.removeAll()
        PQreset(handle)
        guard isOpen else { throw connectionError("could not reconnect") }
        try setUpSession()
    }

    // MARK: Internals

    private static func connect(_ configuration: PostgresConfiguration) throws -> OpaquePointer {
        let keywords = ["dbname", "fallback_application_name", "connect_timeout"]
        let values = [configuration.conninfo, configuration.applicationName, String(configuration.connectTimeout)]
        let conn: OpaquePointer? = withCStrings(keywords + [nil]) { k in
            withCStrings(values + [nil]) { v in PQconnectdbParams(k, v, 1) }
        }
        guard let conn else { throw PostgresError(kind: .connection, message: "libpq could not allocate a connection") }
        if PQstatus(conn) != CONNECTION_OK {
            let message = firstLine(String(cString: PQerrorMessage(conn)))
            let target = describeTarget(conn)
            PQfinish(conn)
            throw PostgresError(
                kind: .connection,
                message: "cannot connect to PostgreSQL at \(target): \(message)",
                hint: "is the server running? `scripts/db.sh up` starts a local one; or set PGFLOW_DATABASE_URL"
            )
        }
        return conn
    }

    /// host, port, database and user of a connection attempt — never the password.
    static func describeTarget(_ conn: OpaquePointer) -> String {
        func field(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "?" }
        let host = field(PQhost(conn))
        return "host=\(host.isEmpty ? "localhost" : host) port=\(field(PQport(conn))) dbname=\(field(PQdb(conn))) user=\(field(PQuser(conn)))"
    }

    private func setUpSession() throws {
        PQsetNoticeProcessor(handle, { _, _ in }, nil)  // notices are not errors; keep stderr clean
        try execute(script: "SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, MDY'; SET extra_float_digits TO 3")
    }

    private func preparedName(for sql: String) throws -> String {
        if let name = statements[sql] { return name }
        statementCounter += 1
        let name = "pgflow_\(statementCounter)"
        try consume(PQprepare(handle, name, sql, 0, nil))
        statements[sql] = name
        return name
    }

    private func execPrepared(_ name: String, _ parameters: [(any PostgresEncodable)?]) throws -> PostgresResult {
        let texts = try Self.texts(parameters)
        let result = Self.withCStrings(texts) { values in
            PQexecPrepared(handle, name, Int32(values.count), values, nil, nil, 0)
        }
        return try consume(result)
    }

    /// The prepared-statement name for `sql`, preparing it first if needed (for pipelines).
    func ensurePrepared(_ sql: String) throws -> String { try preparedName(for: sql) }

    static func texts(_ parameters: [(any PostgresEncodable)?]) throws -> [String?] {
        try parameters.map { p in
            guard let text = p?.postgresText else { return nil }
            if text.utf8.contains(0) {
                throw PostgresError(kind: .usage, message: "a text parameter contains a NUL byte, which PostgreSQL text cannot hold")
            }
            return text
        }
    }

    /// Calls `body` with C string pointers for `strings` (nil stays NULL), valid only during the call.
    static func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) throws -> R) rethrows -> R {
        var offsets: [Int?] = []
        offsets.reserveCapacity(strings.count)
        var bytes: [CChar] = []
        for s in strings {
            if let s {
                offsets.append(bytes.count)
                bytes.append(contentsOf: s.utf8CString)
            } else {
                offsets.append(nil)
            }
        }
        return try bytes.withUnsafeBufferPointer { buffer in
            try body(offsets.map { $0.map { buffer.baseAddress! + $0 } })
        }
    }

    /// Turns a libpq result into a `PostgresResult` or a `PostgresError`, clearing it exactly once.
    @discardableResult
    func consume(_ raw: OpaquePointer?) throws -> PostgresResult {
        guard let raw else { throw connectionError("the connection was lost") }
        let result = OwnedResult(raw)
        switch PQresultStatus(result.pointer) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE, PGRES_PIPELINE_SYNC:
            return result.copy()
        case PGRES_PIPELINE_ABORTED:
            throw PostgresError(kind: .server, sqlState: "25P02", message: "statement skipped: an earlier statement in the pipeline failed")
        default:
            throw serverError(result.pointer)
        }
    }

    private func serverError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let sqlState = field(UInt8(ascii: "C"))
        let message = field(UInt8(ascii: "M")) ?? Self.firstLine(String(cString: PQresultErrorMessage(result)))
        let kind: PostgresError.Kind = (sqlState == nil && !isOpen) ? .connection : .server
        return PostgresError(
            kind: kind, sqlState: sqlState, message: message.isEmpty ? lastMessage : message,
            detail: field(UInt8(ascii: "D")), hint: field(UInt8(ascii: "H")))
    }

    var lastMessage: String { Self.firstLine(String(cString: PQerrorMessage(handle))) }

    func connectionError(_ what: String) -> PostgresError {
        let detail = lastMessage
        return PostgresError(
            kind: .connection,
            message: "\(what) (\(Self.describeTarget(handle)))\(detail.isEmpty ? "" : ": \(detail)")")
    }

    static func firstLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
    }
}

/// Owns a `PGresult` so that `PQclear` runs exactly once.
struct OwnedResult: ~Copyable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { PQclear(pointer) }

    /// Copies names, values and the row count out of libpq's memory.
    func copy() -> PostgresResult {
        let nColumns = Int(PQnfields(pointer))
        let nRows = Int(PQntuples(pointer))
        var names: [String] = []
        names.reserveCapacity(nColumns)
        for c in 0..<nColumns { names.append(String(cString: PQfname(pointer, Int32(c)))) }
        let columns = PostgresColumns(names: names)
        var rows: [PostgresRow] = []
        rows.reserveCapacity(nRows)
        for r in 0..<nRows {
            var values: [String?] = []
            values.reserveCapacity(nColumns)
            for c in 0..<nColumns {
                if PQgetisnull(pointer, Int32(r), Int32(c)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(pointer, Int32(r), Int32(c))))
                }
            }
            rows.append(PostgresRow(columns: columns, values: values))
        }
        let tuples = String(cString: PQcmdTuples(pointer))
        return PostgresResult(columns: columns, rows: rows, affectedRows: Int(tuples) ?? 0)
    }
}
