// PGFlowCLIKit: what the `pgflow` command line does, without the argument parsing: errors as one
// line with an exit code and the CLI command to run next, tables with one timestamp format, time
// arguments, and following a run through LISTEN/NOTIFY. Free of ArgumentParser, tested on its own.
//
// Exit codes: 0 done; 1 the operation failed (or a followed run did not complete); 2 not available
// (this build or this database's schema lacks it); 3 cannot reach the database; 4 migrations pending;
// 5 not found; 6 invalid input (a bad value, a bad pgflow.yaml, a value the database refused); 64 bad usage.

/// A CLI failure: one line and an exit code.
public struct CLIError: Error, CustomStringConvertible, Equatable {
    /// The line printed after `pgflow: `.
    public let description: String
    /// The exit code.
    public let code: Int32

    /// Creates a failure.
    public init(description: String, code: Int32) {
        self.description = description
        self.code = code
    }

    /// Exit 1: the operation failed.
    public static func failed(_ what: String) -> CLIError { CLIError(description: what, code: 1) }
    /// Exit 5: unknown deployment, run, queue, limit, schedule.
    public static func notFound(_ what: String) -> CLIError { CLIError(description: what, code: 5) }
    /// Exit 6: invalid input.
    public static func invalid(_ what: String) -> CLIError { CLIError(description: what, code: 6) }
}
