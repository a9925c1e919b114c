import CPGFlowSpawn
import Foundation
import Synchronization

/// A command run by the agent under a supervisor process (see `pgflow_spawn_supervised`): the command
/// runs in a process group of its own, which the supervisor kills when the agent dies, or when the
/// agent's liveness beats (`beat()`, sent while its heartbeat to the database succeeds) stop for the
/// fence timeout, so that no process of a run outlives the agent's claim on it. Spawned from a thread of
/// its own, with its output delivered line by line and its end awaited without blocking Swift's pool.
final class ChildProcess: @unchecked Sendable {
    /// How the command ended.
    enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
    }

    /// How the command ended, and whether its supervisor fenced it.
    struct Ending: Sendable, Equatable {
        let termination: Termination
        /// Why the supervisor killed the group, if it did (`PGFLOW_FENCE_*`).
        let fence: Int32
    }

    /// One line of output.
    struct OutputLine: Sendable {
        let isError: Bool
        let text: String
    }

    /// The command's process id (also its process group id).
    let pid: Int32
    private let liveness: Mutex<Int32>
    private let exit: Task<Ending, Never>

    private init(pid: Int32, livenessFD: Int32, exit: Task<Ending, Never>) {
        self.pid = pid
        self.liveness = Mutex(livenessFD)
        self.exit = exit
    }

    deinit { liveness.withLock { if $0 >= 0 { close($0) } } }

    /// Starts `arguments[0]` (searched in PATH) with `environment` under a supervisor that kills its
    /// process group after `fence` without a beat (or at once when the agent dies); writes `input` to
    /// its stdin. `deadline` (`pgflow_monotonic_ms`, 0 for none) is when the agent's claim stops being
    /// proven: the fence counts from it at the latest, and past it the command is not started at all
    /// (`NotStartedPastDeadline`).
    static func start(
        arguments: [String], environment: [String: String], input: Data, fence: Duration, killGrace: Duration,
        deadline: Int64 = 0, onOutput: @escaping @Sendable (OutputLine) -> Void
    ) async throws -> ChildProcess {
        ignoreSIGPIPE  // a command that exits without reading its stdin must not kill the agent
        let (started, startedContinuation) = AsyncStream<Result<(Int32, Int32), any Error>>.makeStream()
        let (ended, endedContinuation) = AsyncStream<Ending>.makeStream()
        let spawner = Spawner(arguments: arguments, environment: environment, input: input, onOutput: onOutput,
                              fenceMilliseconds: milliseconds(fence), graceMilliseconds: milliseconds(killGrace),
                              deadlineMilliseconds: deadline)
        let thread = Thread {
            spawner.run(started: { startedContinuation.yield($0); startedContinuation.finish() },
                        ended: { endedContinuation.yield($0); endedContinuation.finish() })
        }
        thread.name = "pgflow.child"
        thread.start()
        var iterator = started.makeAsyncIterator()
        guard let result = await iterator.next() else { throw SpawnError(message: "the process did not start") }
        let (pid, livenessFD) = try result.get()
        let exit = Task { () -> Ending in
            var it = ended.makeAsyncIterator()
            return await it.next() ?? Ending(termination: .signaled(SIGKILL), fence: 0)
        }
        return ChildProcess(pid: pid, livenessFD: livenessFD, exit: exit)
    }

    /// Tells the supervisor the agent is alive and holds its claim (call about every second while the
    /// heartbeat succeeds).
    func beat() {
        liveness.withLock { fd in
            guard fd >= 0 else { return }
            var byte: UInt8 = 1
            _ = write(fd, &byte, 1)
        }
    }

    /// Waits for the command (and everything left in its group) to end.
    func wait() async -> Termination { await exit.value.termination }

    /// Waits for the end, with the supervisor's fence verdict.
    func ending() async -> Ending { await exit.value }

    /// Sends `signal` to the whole process group.
    func signal(_ signal: Int32) { _ = kill(-pid, signal) }

    /// SIGTERM to the group, then SIGKILL after `grace` if it is still running; returns how it ended.
    func terminate(grace: Duration) async -> Termination {
        signal(SIGTERM)
        signal(SIGCONT)
        let killer = Task {
            try await Task.sleep(for: grace)
            self.signal(SIGKILL)
        }
        let termination = await wait()
        killer.cancel()
        return termination
    }
}

/// A duration in whole milliseconds for C (clamped to 1 ms … 24 days).
private func milliseconds(_ d: Duration) -> Int32 { Int32(clamping: max(wholeMilliseconds(d), 1)) }

/// Set once: writes to a closed pipe fail with EPIPE instead of killing the process.
private let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

/// Why a command could not be started.
struct SpawnError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// The command was not started: the agent's claim was no longer proven when it was to start (no
/// successful heartbeat for the fresh window and the fence timeout: the agent was frozen or cut off
/// between its claim and the spawn, and the reaper may have handed the run to another agent).
struct NotStartedPastDeadline: Error, CustomStringConvertible {
    var description: String {
        "not started: the agent had no successful heartbeat for the fence timeout before the start (frozen or cut off from the database); the run is left to reconciliation"
    }
}

/// Runs on the child's own thread: spawns the supervisor, feeds stdin, reads output, reaps.
private struct Spawner {
    let arguments: [String]
    let environment: [String: String]
    let input: Data
    let onOutput: @Sendable (ChildProcess.OutputLine) -> Void
    let fenceMilliseconds: Int32
    let graceMilliseconds: Int32
    let deadlineMilliseconds: Int64

    func run(started: (Result<(Int32, Int32), any Error>) -> Void, ended: (ChildProcess.Ending) -> Void) {
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        var livePipe: [Int32] = [-1, -1], reportPipe: [Int32] = [-1, -1]
        func closeAll() { for fd in inPipe + outPipe + errPipe + livePipe + reportPipe where fd >= 0 { close(fd) } }
        guard pgflow_pipe_cloexec(&inPipe) == 0, pgflow_pipe_cloexec(&outPipe) == 0, pgflow_pipe_cloexec(&errPipe) == 0,
              pgflow_pipe_cloexec(&livePipe) == 0, pgflow_pipe_cloexec(&reportPipe) == 0 else {
            let message = String(cString: strerror(errno))
            closeAll()
            started(.failure(SpawnError(message: "cannot create pipes: \(message)")))
            return
        }
        let env = environment.map { "\($0.key)=\($0.value)" }
        guard let path = Self.resolve(arguments[0], path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin") else {
            closeAll()
            started(.failure(SpawnError(message: "cannot start \(arguments[0]): no such executable in PATH")))
            return
        }
        let supervisor = withCStringArray(arguments) { argv in
            withCStringArray(env) { envp in
                pgflow_spawn_supervised(path, argv, envp, inPipe[0], outPipe[1], errPipe[1], livePipe[0], reportPipe[1],
                                        fenceMilliseconds, graceMilliseconds, deadlineMilliseconds)
            }
        }
        let spawnErrno = errno
        for fd in [inPipe[0], outPipe[1], errPipe[1], livePipe[0], reportPipe[1]] { close(fd) }
        guard supervisor > 0 else {
            for fd in [inPipe[1], outPipe[0], errPipe[0], livePipe[1], reportPipe[0]] { close(fd) }
            started(.failure(SpawnError(message: "cannot start \(arguments[0]): \(String(cString: strerror(spawnErrno)))")))
            return
        }
        _ = fcntl(livePipe[1], F_SETFL, fcntl(livePipe[1], F_GETFL) | O_NONBLOCK)
        // FORKED (the command's pid, before it may exec), then STARTED or SPAWN_FAILED.
        var forked: Int32?
        var first = Self.readReport(reportPipe[0])
        if let report = first, report.kind == Int32(PGFLOW_REPORT_FORKED) {
            forked = report.value
            first = Self.readReport(reportPipe[0])
        }
        guard let first, first.kind == Int32(PGFLOW_REPORT_STARTED) else {
            for fd in [inPipe[1], outPipe[0], errPipe[0], livePipe[1], reportPipe[0]] { close(fd) }
            if let first, first.kind == Int32(PGFLOW_REPORT_ENDED), first.extra == Int32(PGFLOW_FENCE_BEFORE_START) {
                Self.reap(supervisor)
                started(.failure(NotStartedPastDeadline()))
                return
            }
            // Killed after forking, before its STARTED: the command may have run (and started others in its
            // group) before the supervisor could say so; none of that may outlive this attempt.
            if first == nil, let forked { Self.killGroup(forked) }
            Self.reap(supervisor)
            let why = first.map { String(cString: strerror($0.value)) } ?? "its supervisor ended early"
            started(.failure(SpawnError(message: "cannot start \(arguments[0]): \(why)")))
            return
        }
        started(.success((first.value, livePipe[1])))  // the ChildProcess owns the liveness pipe now
        // Once the supervisor has exited, its last report is in the pipe — or the pipe is at its end: it was
        // killed before it could write one. Then nothing has stopped the command's process group: the
        // command itself died of its parent-death signal, but its children were orphaned and run on (a
        // retry could start beside them), so the group is killed here. With the report the group is
        // already empty (the supervisor ends only then) and nothing is sent.
        var last: (kind: Int32, value: Int32, extra: Int32)?? = nil
        func settle() {
            let report = Self.readReport(reportPipe[0])
            last = .some(report)
            if report?.kind != Int32(PGFLOW_REPORT_ENDED) { Self.killGroup(first.value) }
        }
        pump(pid: supervisor, stdin: inPipe[1], stdout: outPipe[0], stderr: errPipe[0], exited: settle)
        if last == nil { settle() }  // the output ended first: the report (or the supervisor's death) follows
        close(reportPipe[0])
        Self.reap(supervisor)
        guard let last = last ?? nil, last.kind == Int32(PGFLOW_REPORT_ENDED) else {
            ended(.init(termination: .signaled(SIGKILL), fence: 0))
            return
        }
        let status = last.value
        // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (they are macros).
        let termination: ChildProcess.Termination = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
        ended(.init(termination: termination, fence: last.extra))
    }

    private static func readReport(_ fd: Int32) -> (kind: Int32, value: Int32, extra: Int32)? {
        var record: [Int32] = [0, 0, 0]
        var got = 0
        while got < 12 {
            let n = record.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, 12 - got) }
            if n > 0 { got += n } else if n < 0 && errno == EINTR { continue } else { return nil }
        }
        return (record[0], record[1], record[2])
    }

    /// SIGKILL to process group `group`, then waits (up to 10 s) until nothing is left in it: its
    /// members are orphans, which init reaps.
    private static func killGroup(_ group: Int32) {
        guard group > 0, kill(-group, SIGKILL) == 0 else { return }
        for _ in 0..<1000 {
            if kill(-group, 0) != 0 && errno == ESRCH { return }
            usleep(10_000)
        }
    }

    private static func reap(_ pid: Int32) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// The executable a command word names: itself when it has a `/`, else the first match in `path`.
    static func resolve(_ command: String, path: String) -> String? {
        if command.contains("/") { return command }
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(command)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Writes stdin and reads both output pipes until they close (or the child has exited and they
    /// stay quiet: a grandchild may hold them open). `exited` is called once, as soon as the supervisor
    /// `pid` is seen to have exited (checked at least every 200 ms, output or not).
    private func pump(pid: Int32, stdin: Int32, stdout: Int32, stderr: Int32, exited: () -> Void) {
        _ = fcntl(stdin, F_SETFL, fcntl(stdin, F_GETFL) | O_NONBLOCK)
        var pendingInput = [UInt8](input)
        var inputFD: Int32 = pendingInput.isEmpty ? -1 : stdin
        if inputFD < 0 { close(stdin) }
        var open: [Int32] = [stdout, stderr]
        var partial: [Int32: [UInt8]] = [stdout: [], stderr: []]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var exitedAt: ContinuousClock.Instant?
        var checkedAt = ContinuousClock.now
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if inputFD >= 0 { fds.append(pollfd(fd: inputFD, events: Int16(POLLOUT), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), 200)
            if exitedAt == nil, ready == 0 || ContinuousClock.now - checkedAt >= .milliseconds(200) {
                checkedAt = .now
                if pgflow_child_exited(pid) == 1 {
                    exitedAt = .now
                    exited()
                }
            }
            if ready == 0 {
                if let t = exitedAt, ContinuousClock.now - t > .milliseconds(300) { break }
                continue
            }
            for f in fds where f.revents != 0 {
                if f.fd == inputFD {
                    let n = pendingInput.withUnsafeBytes { write(inputFD, $0.baseAddress, $0.count) }
                    if n > 0 { pendingInput.removeFirst(n) }
                    if n < 0 && errno != EAGAIN || pendingInput.isEmpty {
                        close(inputFD)
                        inputFD = -1
                    }
                    continue
                }
                let n = buffer.withUnsafeMutableBytes { read(f.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    partial[f.fd, default: []].append(contentsOf: buffer[0..<n])
                    emitLines(&partial[f.fd, default: []], isError: f.fd == stderr, final: false)
                } else if n == 0 || errno != EINTR && errno != EAGAIN {
                    emitLines(&partial[f.fd, default: []], isError: f.fd == stderr, final: true)
                    open.removeAll { $0 == f.fd }
                    close(f.fd)
                }
            }
        }
        for fd in open {
            emitLines(&partial[fd, default: []], isError: fd == stderr, final: true)
            close(fd)
        }
        if inputFD >= 0 { close(inputFD) }
    }

    private func emitLines(_ bytes: inout [UInt8], isError: Bool, final: Bool) {
        while let newline = bytes.firstIndex(of: 10) {
            onOutput(.init(isError: isError, text: String(decoding: bytes[..<newline], as: UTF8.self)))
            bytes.removeFirst(newline + 1)
        }
        if bytes.count >= 16_384 || (final && !bytes.isEmpty) {
            onOutput(.init(isError: isError, text: String(decoding: bytes, as: UTF8.self)))
            bytes.removeAll()
        }
    }
}

/// Calls `body` with a NULL-terminated array of C strings.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
