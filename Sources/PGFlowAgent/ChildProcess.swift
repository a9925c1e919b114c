import CPGFlowSpawn
import Foundation

/// A command run by the agent: spawned from a thread of its own (the child's parent-death signal is
/// tied to the thread that forked it, so that thread lives until the child exits), in its own process
/// group, with its output delivered line by line and its exit awaited without blocking Swift's pool.
final class ChildProcess: @unchecked Sendable {
    /// How the process ended.
    enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
    }

    /// One line of output.
    struct OutputLine: Sendable {
        let isError: Bool
        let text: String
    }

    /// The process id (also its process group id).
    let pid: Int32
    private let exit: Task<Termination, Never>

    private init(pid: Int32, exit: Task<Termination, Never>) {
        self.pid = pid
        self.exit = exit
    }

    /// Starts `arguments[0]` (searched in PATH) with `environment`, writes `input` to its stdin.
    static func start(
        arguments: [String], environment: [String: String], input: Data,
        onOutput: @escaping @Sendable (OutputLine) -> Void
    ) async throws -> ChildProcess {
        ignoreSIGPIPE  // a command that exits without reading its stdin must not kill the agent
        let (started, startedContinuation) = AsyncStream<Result<Int32, any Error>>.makeStream()
        let (ended, endedContinuation) = AsyncStream<Termination>.makeStream()
        let thread = Thread {
            Supervisor(arguments: arguments, environment: environment, input: input, onOutput: onOutput)
                .run(started: { startedContinuation.yield($0); startedContinuation.finish() },
                     ended: { endedContinuation.yield($0); endedContinuation.finish() })
        }
        thread.name = "pgflow.child"
        thread.start()
        var iterator = started.makeAsyncIterator()
        guard let result = await iterator.next() else { throw SpawnError(message: "the process did not start") }
        let pid = try result.get()
        let exit = Task { () -> Termination in
            var it = ended.makeAsyncIterator()
            return await it.next() ?? .signaled(SIGKILL)
        }
        return ChildProcess(pid: pid, exit: exit)
    }

    /// Waits for the process to end.
    func wait() async -> Termination { await exit.value }

    /// Sends `signal` to the whole process group.
    func signal(_ signal: Int32) { _ = kill(-pid, signal) }

    /// SIGTERM to the group, then SIGKILL after `grace` if it is still running; returns how it ended.
    func terminate(grace: Duration) async -> Termination {
        signal(SIGTERM)
        let killer = Task {
            try await Task.sleep(for: grace)
            self.signal(SIGKILL)
        }
        let termination = await wait()
        killer.cancel()
        return termination
    }
}

/// Set once: writes to a closed pipe fail with EPIPE instead of killing the process.
private let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

/// Why a command could not be started.
struct SpawnError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Runs on the child's own thread: spawns, feeds stdin, reads output, reaps.
private struct Supervisor {
    let arguments: [String]
    let environment: [String: String]
    let input: Data
    let onOutput: @Sendable (ChildProcess.OutputLine) -> Void

    func run(started: (Result<Int32, any Error>) -> Void, ended: (ChildProcess.Termination) -> Void) {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pgflow_pipe_cloexec(&inPipe) == 0, pgflow_pipe_cloexec(&outPipe) == 0, pgflow_pipe_cloexec(&errPipe) == 0 else {
            started(.failure(SpawnError(message: "cannot create pipes: \(String(cString: strerror(errno)))")))
            return
        }
        let env = environment.map { "\($0.key)=\($0.value)" }
        guard let path = Self.resolve(arguments[0], path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin") else {
            close(inPipe[0]); close(outPipe[1]); close(errPipe[1]); close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            started(.failure(SpawnError(message: "cannot start \(arguments[0]): no such executable in PATH")))
            return
        }
        let pid = withCStringArray(arguments) { argv in
            withCStringArray(env) { envp in pgflow_spawn(path, argv, envp, inPipe[0], outPipe[1], errPipe[1]) }
        }
        let spawnErrno = errno
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard pid > 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            started(.failure(SpawnError(message: "cannot start \(arguments.first ?? "?"): \(String(cString: strerror(spawnErrno)))")))
            return
        }
        started(.success(pid))
        pump(pid: pid, stdin: inPipe[1], stdout: outPipe[0], stderr: errPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (they are macros).
        if status & 0x7f == 0 { ended(.exited((status >> 8) & 0xff)) } else { ended(.signaled(status & 0x7f)) }
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
    /// stay quiet: a grandchild may hold them open).
    private func pump(pid: Int32, stdin: Int32, stdout: Int32, stderr: Int32) {
        _ = fcntl(stdin, F_SETFL, fcntl(stdin, F_GETFL) | O_NONBLOCK)
        var pendingInput = [UInt8](input)
        var inputFD: Int32 = pendingInput.isEmpty ? -1 : stdin
        if inputFD < 0 { close(stdin) }
        var open: [Int32] = [stdout, stderr]
        var partial: [Int32: [UInt8]] = [stdout: [], stderr: []]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var exitedAt: ContinuousClock.Instant?
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if inputFD >= 0 { fds.append(pollfd(fd: inputFD, events: Int16(POLLOUT), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), 200)
            if ready == 0 {
                if exitedAt == nil, pgflow_child_exited(pid) == 1 { exitedAt = .now }
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
