// The supervisor's start deadline: a command whose agent's claim is no longer proven (no successful
// heartbeat for the fresh window and the fence timeout) never runs, and the fence counts from that proof,
// not from the supervisor's own start. Real processes (the supervisor and its command), no database.
import CPGFlowSpawn
import Foundation
import PGFlowTestSupport
import Synchronization
import Testing

@testable import PGFlowAgent

struct SupervisorDeadlineTests {
    static func marker() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-deadline-\(UUID().uuidString)").path
    }

    static func start(_ command: String, deadline: Int64, fence: Duration) async throws -> ChildProcess {
        try await ChildProcess.start(
            arguments: ["sh", "-c", command], environment: ["PATH": "/usr/bin:/bin"], input: Data(),
            fence: fence, killGrace: .seconds(1), deadline: deadline) { _ in }
    }

    /// An agent frozen between its claim and the spawn, past the deadline: the supervisor forks the
    /// command's process but never lets it exec. Before the deadline existed the command ran (the fence
    /// clock started at the supervisor's start), beside the attempt the reaper had meanwhile handed out.
    @Test func aCommandPastItsDeadlineNeverRuns() async throws {
        let path = Self.marker()
        defer { try? FileManager.default.removeItem(atPath: path) }
        await #expect(throws: NotStartedPastDeadline.self) {
            _ = try await Self.start("touch '\(path)'; sleep 30", deadline: pgflow_monotonic_ms() - 1, fence: .seconds(20))
        }
        // The supervisor reported only after reaping the waiting child: nothing can still create the file.
        #expect(!FileManager.default.fileExists(atPath: path), "the command ran past its deadline")
    }

    /// The fence counts from the deadline, not from the supervisor's start: with a fence timeout of 300 s and
    /// the deadline 1 s away, a command that gets no beat is stopped after about a second (the test waits up to
    /// 60 s; counted from the supervisor's start it would run for 300 s).
    @Test func theFenceCountsFromTheDeadlineNotFromTheSupervisorsStart() async throws {
        let child = try await Self.start("exec sleep 120", deadline: pgflow_monotonic_ms() + 1_000, fence: .seconds(300))
        let ended = Mutex<ChildProcess.Ending?>(nil)
        let waiter = Task { let e = await child.ending(); ended.withLock { $0 = e } }
        let stopped = await eventually(timeout: 60) { ended.withLock { $0 } != nil }
        if !stopped { child.signal(SIGKILL) }
        await waiter.value
        #expect(stopped, "the command outlived its deadline by a minute")
        #expect(ended.withLock { $0 }?.fence == Int32(PGFLOW_FENCE_SILENT))
    }

    /// Without a deadline (0), or before it, the command runs as always.
    @Test func aCommandBeforeItsDeadlineRuns() async throws {
        for deadline in [Int64(0), pgflow_monotonic_ms() + 600_000] {
            let path = Self.marker()
            defer { try? FileManager.default.removeItem(atPath: path) }
            let child = try await Self.start("touch '\(path)'", deadline: deadline, fence: .seconds(20))
            #expect(await child.wait() == .exited(0))
            #expect(FileManager.default.fileExists(atPath: path))
        }
    }
}
