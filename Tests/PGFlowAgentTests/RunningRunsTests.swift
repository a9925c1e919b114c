// Which claimed runs the agent starts while an earlier attempt of the same run still holds its handle.
import Foundation
import PGFlowClient
import Testing

@testable import PGFlowAgent

struct RunningRunsTests {
    static func run(_ id: UUID, attempt: Int) throws -> ClaimedFlowRun {
        let payload = """
            {"flow_run_id": "\(id)", "flow_run_name": "r", "flow_name": "f", "deployment_id": null, "deployment_name": null,
             "entrypoint": "true", "parameters": "{}", "run_count": \(attempt), "state_type": "RUNNING",
             "timeout_seconds": null, "pushed_at": 0}
            """
        return try #require(ClaimedFlowRun(pushPayload: payload))
    }

    /// The retry of a run whose attempt has ended (its failure proposed, so the database retried it) is
    /// claimed before that attempt's handle is removed: it starts. Until this was handled the claim
    /// dropped it, and the run sat Running without a process until reconciliation gave it back (CI-like
    /// load made the process test `killedSupervisorLeavesNothingOfItsCommandsGroupBehind` see attempt 3
    /// where attempt 2 was due).
    @Test func aRetryStartsOnceTheEarlierAttemptsOutcomeIsKnown() throws {
        let running = RunningRuns()
        let id = UUID()
        let first = RunHandle(run: try Self.run(id, attempt: 1))
        running.insert(first)
        let retry = try Self.run(id, attempt: 2)
        #expect(!running.admits(retry), "attempt 1 still executing: attempt 2 must not start beside it")
        first.settle()
        #expect(running.admits(retry))
        #expect(!running.admits(try Self.run(id, attempt: 1)), "the same attempt again is not admitted")
        let second = RunHandle(run: retry)
        running.insert(second)
        running.remove(first, forget: true)  // attempt 1's execution ends after attempt 2 started
        #expect(running[id] === second, "removing attempt 1 leaves attempt 2's handle")
        #expect(running.mayHaveRun(id), "... and remembers that a process of the run may be running")
        running.remove(second, forget: true)
        #expect(running[id] == nil)
        #expect(!running.mayHaveRun(id))
        #expect(running.admits(try Self.run(UUID(), attempt: 1)), "a run with no handle is admitted")
    }
}

struct PushedRunsTests {
    /// The last 4,096 attempts are remembered (a second start of one is refused), older ones forgotten in
    /// the order they started, through many turns of the ring that holds them.
    @Test func theLast4096AttemptsAreRememberedOldestForgottenFirst() throws {
        let pushed = PushedRuns()
        let ids = (0..<10_000).map { _ in UUID() }
        for id in ids { #expect(pushed.start(try RunningRunsTests.run(id, attempt: 1), pushed: false)) }
        #expect(!pushed.start(try RunningRunsTests.run(ids[9_999], attempt: 1), pushed: false), "the newest is remembered")
        #expect(!pushed.start(try RunningRunsTests.run(ids[10_000 - 4_096], attempt: 1), pushed: false), "the oldest of the last 4,096 too")
        #expect(pushed.start(try RunningRunsTests.run(ids[10_000 - 4_097], attempt: 1), pushed: false), "the one before it is forgotten")
        #expect(pushed.start(try RunningRunsTests.run(ids[9_999], attempt: 2), pushed: true), "another attempt of a run is new")
        #expect(pushed.unacknowledged == [ids[9_999]])
        // the two starts above pushed out the two oldest remembered attempts (and this one a third), not newer ones
        #expect(pushed.start(try RunningRunsTests.run(ids[10_000 - 4_096], attempt: 1), pushed: false))
        #expect(!pushed.start(try RunningRunsTests.run(ids[10_000 - 4_093], attempt: 1), pushed: false), "(three evicted: the next oldest is still remembered)")
    }
}
