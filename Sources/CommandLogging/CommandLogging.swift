// The logging set-up shared by the long-running commands (pgflow-agent, pgflow-scheduler).
import Foundation
import Logging

/// Sends every logger to stderr at the level `PGFLOW_LOG_LEVEL` names (trace … critical; default info)
/// and returns the command's logger. Call once, first thing in the command.
public func bootstrapCommandLogging(label: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> Logger {
    let level = environment["PGFLOW_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: label)
}
