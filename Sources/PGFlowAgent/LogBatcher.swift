import Foundation
import PGFlowClient
import PGFlowPostgres
import Synchronization

/// Collects log lines from any thread and writes them with `pgflow.write_logs`, many per statement.
///
/// A database outage loses no line: lines wait in memory (up to `memoryBytes`), then in a spill file
/// on disk (up to `spillBytes`), in order, and are written when the database is back. Only lines beyond
/// the spill bound are dropped; each run that lost lines gets a line saying how many, and the agent's
/// own log says so too. A batch the database refuses for another reason (not a lost connection) is
/// tried three times, then dropped and reported the same way.
final class LogBatcher: Sendable {
    private struct State {
        var memory: [LogLine] = []
        var memoryBytes = 0
        var spill: LogSpillFile?
        var written = 0
        var appended = 0
        var dropped: [UUID: Int] = [:]
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
        var finishing = false
        var finished = false
    }

    private let pool: PostgresPool
    private let memoryBytes: Int
    private let spillBytes: Int
    private let state = Mutex(State())
    private let signal = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

    init(pool: PostgresPool, memoryBytes: Int = 64 << 20, spillBytes: Int = 1 << 30) {
        self.pool = pool
        self.memoryBytes = max(memoryBytes, 1)
        self.spillBytes = spillBytes
    }

    /// Queues a line (never waits for the database; callable from the output-reading threads).
    func append(_ line: LogLine) {
        state.withLock { s in
            s.appended += 1
            let size = Self.size(line)
            if s.spill == nil && s.memoryBytes + size <= memoryBytes {
                s.memory.append(line)
                s.memoryBytes += size
                return
            }
            if s.spill == nil { s.spill = LogSpillFile() }
            if s.spill?.append(line, limit: spillBytes) != true {
                s.dropped[line.flowRunID, default: 0] += 1
                s.written += 1  // it will never be written: flushed() must not wait for it
            }
        }
        signal.continuation.yield()
    }

    /// Waits until every line appended before this call is written (or dropped).
    func flushed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.written >= s.appended || s.finished { return true }
                s.waiters.append((s.appended, continuation))
                return false
            }
            if done { continuation.resume() } else { signal.continuation.yield() }
        }
    }

    /// Writes batches until `finish()`, then writes what is left (giving up on an unreachable database
    /// after a minute, so that a stopping agent does not hang).
    func run() async {
        for await _ in signal.stream { await write() }
        await write()
        let waiting = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.finished = true
            defer { s.waiters = [] }
            return s.waiters.map(\.1)
        }
        waiting.forEach { $0.resume() }
    }

    /// Stops `run` after the lines queued so far are written (for at most a minute more when the
    /// database cannot be reached).
    func finish() {
        state.withLock { $0.finishing = true }
        signal.continuation.finish()
    }

    /// The next batch: memory first, then the spill file (read back in order).
    private func nextBatch() -> [LogLine] {
        state.withLock { s in
            if s.memory.isEmpty, let spill = s.spill {
                s.memory = spill.read(upTo: 5_000)
                s.memoryBytes = s.memory.reduce(0) { $0 + Self.size($1) }
                if spill.isExhausted {
                    spill.remove()
                    s.spill = nil
                }
            }
            if s.memory.isEmpty, !s.dropped.isEmpty {
                s.memory = s.dropped.map { id, count in
                    LogLine(flowRunID: id, level: 30, name: "pgflow.agent",
                            message: "\(count) log line(s) of this run were dropped: the database was unreachable and the agent's log spill file was full")
                }
                s.appended += s.memory.count
                s.dropped = [:]
            }
            let batch = Array(s.memory.prefix(5_000))
            s.memory.removeFirst(batch.count)
            s.memoryBytes = max(0, s.memoryBytes - batch.reduce(0) { $0 + Self.size($1) })
            return batch
        }
    }

    private func write() async {
        while true {
            let batch = nextBatch()
            if batch.isEmpty { return }
            var backoff = 50, otherFailures = 0
            let giveUpAt = ContinuousClock.now + .seconds(60)
            // one id for every try of this batch: a try whose commit landed but whose reply was lost
            // makes the next try a no-op instead of a second copy of the lines
            let batchID = UUID()
            while true {
                do {
                    try await pool.withConnection { try PGFlowClient.writeLogs(batch, batchID: batchID, on: $0) }
                    break
                } catch let error as PostgresError where error.isConnectionFailure {
                    // An outage: keep the lines and try again until the database is back.
                    if state.withLock({ $0.finishing }) && ContinuousClock.now > giveUpAt {
                        report(dropped: batch.count, error)
                        break
                    }
                    await pause(milliseconds: backoff)
                    backoff = min(backoff * 2, 2_000)
                } catch {
                    otherFailures += 1
                    if otherFailures == 3 {
                        report(dropped: batch.count, error)
                        break
                    }
                    await pause(milliseconds: 200)
                }
            }
            let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.written += batch.count
                let (done, waiting) = (s.waiters.filter { $0.0 <= s.written }, s.waiters.filter { $0.0 > s.written })
                s.waiters = waiting
                return done.map(\.1)
            }
            ready.forEach { $0.resume() }
        }
    }

    /// What a line costs in memory, as counted against the bound (its text and a fixed overhead).
    static func size(_ line: LogLine) -> Int { line.message.utf8.count + line.name.utf8.count + 64 }

    private func report(dropped count: Int, _ error: any Error) {
        FileHandle.standardError.write(Data("pgflow-agent: dropped \(count) log lines: \(error)\n".utf8))
    }
}

/// Log lines waiting on disk during a database outage: one JSON object a line in a temporary file,
/// read back in order and removed when empty. Used under the batcher's lock only.
final class LogSpillFile: @unchecked Sendable {
    private struct Record: Codable {
        let run: UUID
        let task: UUID?
        let level: Int
        let name: String
        let message: String
        let time: Double
    }

    private let path: String
    private let handle: FileHandle?
    private var writtenBytes = 0
    private var readOffset: UInt64 = 0
    private var pendingLines = 0

    init() {
        path = NSTemporaryDirectory() + "pgflow-agent-logs-\(getpid())-\(UUID().uuidString.prefix(8)).jsonl"
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        handle = FileHandle(forUpdatingAtPath: path)
    }

    /// Adds a line; false when the file would exceed `limit` bytes (or cannot be written).
    func append(_ line: LogLine, limit: Int) -> Bool {
        guard let handle else { return false }
        let record = Record(run: line.flowRunID, task: line.taskRunID, level: line.level, name: line.name,
                            message: line.message, time: line.timestamp.timeIntervalSince1970)
        guard var data = try? JSONEncoder().encode(record) else { return false }
        data.append(10)
        if writtenBytes + data.count > limit { return false }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: data)
        } catch { return false }
        writtenBytes += data.count
        pendingLines += 1
        return true
    }

    /// True when every line written has been read back.
    var isExhausted: Bool { pendingLines == 0 }

    /// Reads back up to `count` lines, oldest first.
    func read(upTo count: Int) -> [LogLine] {
        guard let handle, pendingLines > 0 else { return [] }
        var lines: [LogLine] = []
        let decoder = JSONDecoder()
        var chunkSize = 1 << 20
        while lines.count < count && pendingLines > 0 {
            guard (try? handle.seek(toOffset: readOffset)) != nil,
                  let chunk = try? handle.read(upToCount: chunkSize), !chunk.isEmpty else { break }
            var consumed = 0
            for piece in chunk.split(separator: 10, omittingEmptySubsequences: false).dropLast() {
                consumed += piece.count + 1
                pendingLines -= 1
                if let r = try? decoder.decode(Record.self, from: Data(piece)) {
                    lines.append(LogLine(flowRunID: r.run, taskRunID: r.task, level: r.level, name: r.name, message: r.message,
                                         timestamp: Date(timeIntervalSince1970: r.time)))
                }
                if lines.count >= count { break }
            }
            if consumed == 0 {  // a line longer than the chunk
                if chunk.count < chunkSize { break }
                chunkSize *= 4
                continue
            }
            readOffset += UInt64(consumed)
        }
        return lines
    }

    /// Deletes the file.
    func remove() {
        try? handle?.close()
        unlink(path)
    }
}
