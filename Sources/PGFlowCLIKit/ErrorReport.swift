// ErrorReport: any error the CLI meets becomes one line and an exit code. SQL hints name SQL functions
// (right for psql users); on the command line they name the CLI command that does the same.
import Foundation
import PGFlowClient
import PGFlowDeploy
import PGFlowPostgres

/// Maps errors to `CLIError`.
public enum ErrorReport {
    /// The line and exit code for `error`.
    public static func cliError(for error: Error) -> CLIError {
        switch error {
        case let error as CLIError: return error
        case let error as DeploymentFileError: return .invalid(error.description)
        case let error as DeployError:
            return CLIError(description: "\(error.location): \(line(error.error))", code: exitCode(error.error) == 1 ? 1 : 6)
        case let error as PostgresError:
            switch error.sqlState {
            case _ where error.kind == .connection: return CLIError(description: line(error), code: 3)
            case "42883"?:  // undefined_function: the database has an older pgflow schema
                return CLIError(description: "this database's pgflow schema lacks what this command needs (\(message(error))); run `pgflow db upgrade`", code: 2)
            case "3F000"?, "42P01"?: return CLIError(description: "the database has no pgflow schema: run `pgflow db upgrade`", code: 2)
            default: return CLIError(description: line(error), code: exitCode(error))
            }
        case let error as PGFlowError:
            if case .invalidInput = error { return .invalid(error.description) }
            return .failed(error.description)
        default:
            return .failed(String(describing: error))
        }
    }

    /// The exit code of a server error: 5 not found, 6 invalid input, 1 otherwise (wrong state, …).
    public static func exitCode(_ error: PostgresError) -> Int32 {
        guard let state = error.sqlState else { return error.kind == .connection ? 3 : 1 }
        if state == "P0002" { return 5 }
        if state.hasPrefix("22") || state.hasPrefix("23") || state == "P0003" { return 6 }
        return 1
    }

    /// `message; hint` with the hint in CLI terms.
    public static func line(_ error: PostgresError) -> String {
        var text = message(error)
        if let detail = error.detail, !detail.isEmpty { text += " (\(detail))" }
        if let hint = error.hint, !hint.isEmpty { text += "; \(cliHint(hint))" }
        return text
    }

    private static func message(_ error: PostgresError) -> String {
        error.message.hasPrefix("pgflow: ") ? String(error.message.dropFirst(8)) : error.message
    }

    /// SQL hints rewritten to name the CLI command (hints without a CLI equivalent are kept).
    public static func cliHint(_ hint: String) -> String {
        var text = hint
        for (pattern, template) in rewrites {
            guard let regex = try? NSRegularExpression(pattern: pattern) else { continue }
            text = regex.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: template)
        }
        return text
    }

    private static let rewrites: [(String, String)] = [
        (#"create it with SELECT pgflow\.create_work_queue\('([^']*)'\)"#, "create it with `pgflow work-queue create $1`"),
        (#"create it with pgflow\.create_work_queue\(name\)"#, "create it with `pgflow work-queue create NAME`"),
        (#"create it with SELECT pgflow\.create_concurrency_limit\('([^']*)', 10\)"#, "create it with `pgflow concurrency-limit create $1 10`"),
        (#"SELECT \* FROM pgflow\.deployment_list shows them"#, "`pgflow deployment ls` lists them"),
        (#"SELECT \* FROM pgflow\.concurrency_status lists them"#, "`pgflow concurrency-limit ls` lists them"),
        (#"SELECT [a-z_, ]+ FROM pgflow\.(schedule_list|deployment_schedules) lists them"#, "`pgflow schedule ls` lists them"),
        (#"SELECT id FROM pgflow\.flow_run_history lists them"#, "`pgflow flow-run ls` lists them"),
        (#"SELECT name FROM pgflow\.flow_list lists them"#, "`pgflow flow ls` lists them"),
        (#"create one with pgflow\.create_deployment_schedule"#, "add one to pgflow.yaml and run `pgflow deploy`"),
        (#"\(pgflow\.cancel_flow_run\)"#, "(`pgflow flow-run cancel RUN_ID`)"),
        (#"move them to another queue \(create_deployment with p_work_queue\)"#, "move them to another queue (`pgflow deployment set NAME --work-queue QUEUE`)"),
        (#"e\.g\. SELECT pgflow\.delete_old_runs\(interval '30 days', 1000\)"#, "e.g. `pgflow db prune --older-than 30d`"),
        (#"pass NULL for no timeout"#, "leave the timeout out for none"),
        (#"pass 0 or more, or NULL for no limit"#, "pass 0 or more, or no limit at all"),
        (#", or NULL for the scheduler's default"#, ""),
    ]
}
