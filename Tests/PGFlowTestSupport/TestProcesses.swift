// Test support: the package's own executables, started as real processes.
import Foundation

/// A pgflow executable started by a test; killed when the test lets go of it.
public final class TestProcess: @unchecked Sendable {
    /// The process.
    public let process: Process
    /// Where its stderr and stdout go.
    public let logFile: URL

    /// The folder holding the built executables (next to the test bundle), or `PGFLOW_BIN_DIR`.
    public static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["PGFLOW_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        var url = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("pgflow-agent").path) {
            url = url.deletingLastPathComponent()
        }
        return url
    }

    /// Starts `binDirectory/name` (or `name` itself when it is an absolute path) with `arguments`, adding
    /// `environment` to the test's own.
    public init(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        process = Process()
        process.executableURL = name.hasPrefix("/") ? URL(fileURLWithPath: name) : Self.binDirectory.appendingPathComponent(name)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-test-\((name as NSString).lastPathComponent)-\(UUID()).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logFile)
    }

    /// The process id.
    public var pid: Int32 { process.processIdentifier }

    /// What it printed so far.
    public var output: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Sends a signal.
    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for it to exit (up to `timeout` seconds); returns its exit status, or nil if it is still running.
    public func waitForExit(timeout: Double) async -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return process.isRunning ? nil : process.terminationStatus
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass; returns whether it held.
public func eventually(timeout: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// True when a process with this pid exists (and is not a zombie).
public func processIsAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    return !stat.contains(") Z ")
}

/// A process named by its pid and its start time (/proc/PID/stat, field 22), so that a pid the kernel
/// has given to a new process since (pids wrap at /proc/sys/kernel/pid_max, 32,768 here, within minutes
/// on a busy machine) is not taken for the old one.
public struct ProcessIdentity: Sendable, Equatable, CustomStringConvertible {
    public let pid: Int32
    public let startTime: UInt64

    /// The process running now under `pid`; nil when there is none.
    public init?(_ pid: Int32) {
        guard let start = Self.startTime(of: pid) else { return nil }
        self.pid = pid
        self.startTime = start
    }

    /// True while this very process exists and is not a zombie.
    public var isAlive: Bool { processIsAlive(pid) && Self.startTime(of: pid) == startTime }

    public var description: String { "\(pid)" }

    static func startTime(of pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")  // fields 3 (state) onwards
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }
}
