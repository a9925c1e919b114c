import Foundation
import Logging

/// A swift-log handler whose records go to `pgflow.logs` in the recorder's batches, tagged with the
/// flow run and task run they were written in; records at `echoLevel` or above are echoed to stderr.
public struct RunLogHandler: LogHandler {
    let scope: FlowRunScope
    let taskRun: TaskRunRecord?
    let label: String
    /// The level at and above which records are also printed to stderr (nil: never).
    public var echoLevel: Logger.Level?
    /// The lowest level recorded.
    public var logLevel: Logger.Level = .info
    /// Metadata added to every record (written as `key=value` after the message).
    public var metadata: Logger.Metadata = [:]

    /// Metadata lookup.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Records one event.
    public func log(event: LogEvent) {
        var text = event.message.description
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        if !all.isEmpty {
            text += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        scope.log(level: Self.level(event.level), name: label, message: text, taskRun: taskRun)
        if let echoLevel, event.level >= echoLevel {
            FileHandle.standardError.write(Data("\(label) [\(scope.flowRunName)] \(event.level): \(text)\n".utf8))
        }
    }

    /// pgflow's numeric level of a swift-log level (10 debug, 20 info, 30 warning, 40 error, 50 critical).
    static func level(_ level: Logger.Level) -> Int {
        switch level {
        case .trace: return 5
        case .debug: return 10
        case .info, .notice: return 20
        case .warning: return 30
        case .error: return 40
        case .critical: return 50
        }
    }
}

/// A logger for the current flow run and task run (records go to `pgflow.logs`); outside any flow, a
/// plain swift-log logger with the same label.
public func runLogger(label: String = "pgflow.run", level: Logger.Level = .info, echo: Logger.Level? = nil) -> Logger {
    guard let scope = FlowRunScope.current else {
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
    let task = FlowRunScope.taskRun
    return Logger(label: label) { label in
        var handler = RunLogHandler(scope: scope, taskRun: task, label: label, echoLevel: echo)
        handler.logLevel = level
        return handler
    }
}

/// Writes to stdout like `Swift.print`; inside a flow created with `logPrints: true`, also records the
/// line in `pgflow.logs` (name `print`, level info). Files that import PGFlow get this `print`.
public func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    let line = items.map { "\($0)" }.joined(separator: separator)
    Swift.print(line, terminator: terminator)
    if let scope = FlowRunScope.current, scope.logPrints {
        scope.log(level: 20, name: "print", message: line)
    }
}
