import PGFlowPostgres

/// An error a pgflow user can meet, printable as one line that says what to do.
public enum PGFlowError: Error, CustomStringConvertible, Sendable {
    /// Installation or configuration is wrong (missing files, bad settings).
    case setup(String)
    /// The user's input is invalid (an unknown deployment, bad parameters, a bad cron expression).
    case invalidInput(String)
    /// The database refused or failed.
    case database(PostgresError)

    /// One line.
    public var description: String {
        switch self {
        case .setup(let s), .invalidInput(let s): return s
        case .database(let e): return e.description
        }
    }
}
