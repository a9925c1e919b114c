// PGFlowPostgres: pgflow's PostgreSQL client over libpq.
//
// `PostgresConnection` is one synchronous libpq connection used from one thread at a time;
// `PostgresPool` hands connections to async code and runs the blocking libpq calls on threads the pool
// owns (never on Swift's cooperative pool); `PostgresListener` delivers LISTEN/NOTIFY as an async
// sequence woken by socket readiness. Values always travel as bound parameters in text format.

/// An error from PostgreSQL or from talking to it, printable as one line.
public struct PostgresError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Where the error came from.
    public enum Kind: String, Sendable {
        /// Could not connect, or the connection broke.
        case connection
        /// The server rejected a statement (it carries a SQLSTATE).
        case server
        /// A value in a result could not be decoded into the requested Swift type.
        case decoding
        /// The client was used wrongly (for example a text value containing a NUL byte).
        case usage
    }

    /// Where the error came from.
    public var kind: Kind
    /// The five-character SQLSTATE (for example `23505`), when the server sent one.
    public var sqlState: String?
    /// The primary message.
    public var message: String
    /// The server's detail line, if any.
    public var detail: String?
    /// The server's hint, if any.
    public var hint: String?

    /// Creates an error.
    public init(kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    /// One line: the message, then detail and hint when present.
    public var description: String {
        var line = message
        if let sqlState { line = "\(line) [SQLSTATE \(sqlState)]" }
        if let detail, !detail.isEmpty { line += " — \(detail)" }
        if let hint, !hint.isEmpty { line += " (hint: \(hint))" }
        return line
    }

    /// True for a `unique_violation` (SQLSTATE 23505).
    public var isUniqueViolation: Bool { sqlState == SQLState.uniqueViolation }

    /// True when the connection is gone (the statement may or may not have run).
    public var isConnectionFailure: Bool { kind == .connection || sqlState?.hasPrefix("08") == true || sqlState == SQLState.adminShutdown }
}

/// SQLSTATE codes pgflow looks at by name.
public enum SQLState {
    /// 23505
    public static let uniqueViolation = "23505"
    /// 23503
    public static let foreignKeyViolation = "23503"
    /// 22P02
    public static let invalidTextRepresentation = "22P02"
    /// 40001
    public static let serializationFailure = "40001"
    /// 40P01
    public static let deadlockDetected = "40P01"
    /// 57P01 (the backend was terminated)
    public static let adminShutdown = "57P01"
    /// 26000 (a prepared statement is gone)
    public static let invalidStatementName = "26000"
    /// 57014
    public static let queryCanceled = "57014"
}
