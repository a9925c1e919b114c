// At most one live attempt: a run's processes (grandchildren included) are gone before its retry
// starts, whether its agent is killed, frozen or cut off from the database.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct FencingProcessTests {
    static let flags = ["--queue", "default", "--heartbeat", "0.5", "--kill-grace", "1", "--fence-timeout", "3", "--reconcile-after", "3"]

    /// What the command wrote: `start ATTEMPT PID`, `child ATTEMPT PID` and `escaped ATTEMPT PID` lines.
    struct Trace {
        let path: String

        func pids(attempt: Int) -> [Int32] {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                let words = line.split(separator: " ")
                return words.count == 3 && words[1] == "\(attempt)" ? Int32(words[2]) : nil
            }
        }

        /// The processes of `pids(attempt:)` that run now, by identity (a pid reused later is not theirs).
        func processes(attempt: Int) -> [ProcessIdentity] { pids(attempt: attempt).compactMap(ProcessIdentity.init) }

        func starts() -> [Int] {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                let words = line.split(separator: " ")
                return words.first == "start" ? Int(words[1]) : nil
            }
        }
    }

    /// A run whose command starts two grandchildren, one of them in a session of its own (out of the
    /// command's process group, as a daemonising script does), and waits; it retries once.
    static func deploy(_ c: PostgresConnection) throws -> (UUID, Trace) {
        let path = NSTemporaryDirectory() + "pgflow-fence-\(UUID().uuidString.prefix(8)).trace"
        let command = "sh -c 'echo start $PGFLOW_RUN_COUNT $$ >> \(path); sleep 60 & echo child $PGFLOW_RUN_COUNT $! >> \(path); "
            + "setsid sleep 61 & echo escaped $PGFLOW_RUN_COUNT $! >> \(path); wait'"
        try c.query("SELECT pgflow.create_deployment('fence', 'grandchildren', $1, p_retries => 1)", [command])
        return (try c.query("SELECT pgflow.run_deployment('fence/grandchildren')").scalar(UUID.self), Trace(path: path))
    }

    /// Starts the run on agent `first` (reaching the database at `firstURL`), disrupts that agent, then
    /// checks that every process of attempt 1 is gone, reaps (with an injected clock), lets a second
    /// agent start attempt 2 and checks attempt 1 is still all gone; `afterRetry` then looks at `first`.
    static func scenario(
        _ db: TestDatabase, firstURL: String, disrupt: (TestProcess) async throws -> Void,
        afterRetry: (TestProcess, PostgresConnection, UUID) async throws -> Void = { _, _, _ in }
    ) async throws {
        let c = try db.connect()
        let (runID, trace) = try deploy(c)
        defer { unlink(trace.path) }
        let first = try TestProcess("pgflow-agent", flags + ["--name", "first"], environment: ["PGFLOW_DATABASE_URL": firstURL])
        #expect(await eventually(timeout: 60) { trace.pids(attempt: 1).count == 3 }, "\(first.output.suffix(2000))")
        let attempt1 = trace.processes(attempt: 1)
        #expect(attempt1.count == 3 && alive(attempt1).count == 3)
        try await disrupt(first)
        let gone = await eventually(timeout: 60) { alive(attempt1).isEmpty }
        #expect(gone, "attempt 1 still running: \(alive(attempt1))")
        // The reaper, as the scheduler runs it, with a heartbeat timeout short enough not to wait for
        // (the first agent has been silent since it was disrupted; no other agent is registered yet).
        var reaped = 0
        _ = try await eventually(timeout: 60) {
            reaped += try c.query("SELECT pgflow.reap_crashed_runs(interval '1 second')").scalar(Int.self)
            return reaped > 0
        }
        #expect(reaped == 1)
        let second = try TestProcess("pgflow-agent", flags + ["--name", "second"], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
        #expect(await eventually(timeout: 60) { trace.pids(attempt: 2).count == 3 }, "\(second.output.suffix(2000))")
        #expect(alive(attempt1).isEmpty, "attempt 2 started while attempt 1 ran")
        try await afterRetry(first, c, runID)
        #expect(trace.starts() == [1, 2], "starts: \(trace.starts())")
        try await cancelAndWaitForAttempt2(c, runID, trace)
        second.signal(SIGTERM)
        #expect(await second.waitForExit(timeout: 60) == 0)
        first.signal(SIGKILL)
    }

    /// Cancels the run and waits until it is Cancelled and every process of its attempt 2 is gone.
    static func cancelAndWaitForAttempt2(_ c: PostgresConnection, _ runID: UUID, _ trace: Trace) async throws {
        try c.query("SELECT pgflow.cancel_flow_run($1)", [runID])
        #expect(try await eventually(timeout: 60) {
            try c.query("SELECT state_type::text FROM pgflow.flow_runs WHERE id = $1", [runID]).scalar(String.self) == "CANCELLED"
        })
        let attempt2 = trace.processes(attempt: 2)
        #expect(await eventually(timeout: 60) { alive(attempt2).isEmpty })
    }

    /// After `first` heartbeats again it neither runs the run again nor touches the second attempt.
    static func comesBackWithoutRerunning(_ c: PostgresConnection, _ runID: UUID) async throws {
        #expect(try await eventually(timeout: 60) {
            try c.query("SELECT status::text FROM pgflow.agents WHERE name = 'first'").scalar(String.self) == "ONLINE"
        })
        // A few more of its heartbeats and reconcile passes.
        let seen = try c.query("SELECT last_heartbeat_at FROM pgflow.agents WHERE name = 'first'").scalar(Date.self)
        #expect(try await eventually(timeout: 60) {
            try c.query("SELECT last_heartbeat_at > $1::timestamptz + interval '2 seconds' FROM pgflow.agents WHERE name = 'first'", [seen]).scalar(Bool.self)
        })
        let run = try #require(try c.query("""
            SELECT r.state_name, a.name FROM pgflow.flow_runs r JOIN pgflow.agents a ON a.id = r.agent_id WHERE r.id = $1
            """, [runID]).first)
        #expect(try run.decode(String.self, at: 0) == "Retrying")
        #expect(try run.decode(String.self, at: 1) == "second")
    }

    @Test func killedAgentLeavesNoProcessOfTheRunBehind() async throws {
        try await TestDatabase.with { db in
            try await Self.scenario(db, firstURL: db.conninfo) { first in
                first.signal(SIGKILL)
                _ = await first.waitForExit(timeout: 60)
            }
        }
    }

    /// A command's supervisor (`pgflow-fence`) SIGKILLed, the agent alive: the command dies of its
    /// parent-death signal, and what it started in its process group is killed by the agent (which finds
    /// the supervisor gone without its last report) before the run ends and its retry starts. Without
    /// that, the orphaned `sleep` of attempt 1 would run beside attempt 2. On a busy machine the kill can
    /// land after the command has run but before its supervisor reported it started (CI found that: the
    /// agent then knew no group to kill); the supervisor now reports the pid before the command may exec.
    @Test func killedSupervisorLeavesNothingOfItsCommandsGroupBehind() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let path = NSTemporaryDirectory() + "pgflow-fence-\(UUID().uuidString.prefix(8)).trace"
            defer { unlink(path) }
            let trace = Trace(path: path)
            // (the child's output goes elsewhere: it does not hold the agent's pipes open, so nothing but the
            // group kill waits for it)
            let command = "sh -c 'echo start $PGFLOW_RUN_COUNT $$ >> \(path); sleep 600 >/dev/null 2>&1 & echo child $PGFLOW_RUN_COUNT $! >> \(path); wait'"
            try c.query("SELECT pgflow.create_deployment('fence', 'group', $1, p_retries => 1)", [command])
            let runID = try c.query("SELECT pgflow.run_deployment('fence/group')").scalar(UUID.self)
            let agent = try TestProcess("pgflow-agent", Self.flags + ["--name", "only"], environment: ["PGFLOW_DATABASE_URL": db.conninfo])
            #expect(await eventually(timeout: 60) { trace.pids(attempt: 1).count == 2 }, "\(agent.output.suffix(2000))")
            let attempt1 = trace.processes(attempt: 1)
            #expect(attempt1.count == 2 && Self.alive(attempt1).count == 2)
            let shell = try #require(attempt1.first, "attempt 1's command")
            let supervisor = try #require(Self.parent(of: shell.pid), "the command's parent")
            #expect(Self.name(of: supervisor) == "pgflow-fence")
            kill(supervisor, SIGKILL)
            let gone = await eventually(timeout: 60) { Self.alive(attempt1).isEmpty }
            #expect(gone, "attempt 1 still running: \(Self.diagnosis(attempt1, c, runID, agent))")
            #expect(await eventually(timeout: 60) { trace.pids(attempt: 2).count == 2 }, "\(agent.output.suffix(2000))")
            #expect(Self.alive(attempt1).isEmpty, "attempt 2 started while attempt 1 ran")
            #expect(trace.starts() == [1, 2], "starts: \(trace.starts())")
            try await Self.cancelAndWaitForAttempt2(c, runID, trace)
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: 60) == 0)
        }
    }

    /// What a failure needs to be understood: the survivors (/proc stat: state, parent, group), the run's
    /// states and logs, and the agent's output.
    static func diagnosis(_ processes: [ProcessIdentity], _ c: PostgresConnection, _ runID: UUID, _ agent: TestProcess) -> String {
        let survivors = alive(processes).map { (try? String(contentsOfFile: "/proc/\($0.pid)/stat", encoding: .utf8)) ?? "\($0.pid) -" }
        let states = (try? c.query("""
            SELECT to_char("timestamp", 'HH24:MI:SS.US') || ' ' || state_name || ' ' || coalesce(message, '')
              FROM pgflow.flow_run_states WHERE flow_run_id = $1 ORDER BY "timestamp", id
            """, [runID]).rows.map { try $0.decode(String.self, at: 0) }) ?? []
        let logs = (try? c.query("""
            SELECT to_char("timestamp", 'HH24:MI:SS.US') || ' ' || name || ' ' || message FROM pgflow.logs WHERE flow_run_id = $1 ORDER BY id
            """, [runID]).rows.map { try $0.decode(String.self, at: 0) }) ?? []
        return "\(survivors)\nstates:\n\(states.joined(separator: "\n"))\nlogs:\n\(logs.joined(separator: "\n"))\nagent:\n\(agent.output.suffix(3000))"
    }

    /// Those of `processes` that still run.
    static func alive(_ processes: [ProcessIdentity]) -> [ProcessIdentity] { processes.filter { $0.isAlive } }

    /// The parent pid and the name of a process, from /proc (nil when it is gone).
    static func parent(of pid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    static func name(of pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func frozenAgentsRunIsStoppedAndNotRunAgainAfterItThaws() async throws {
        try await TestDatabase.with { db in
            try await Self.scenario(db, firstURL: db.conninfo) { first in
                first.signal(SIGSTOP)
            } afterRetry: { first, c, runID in
                first.signal(SIGCONT)
                try await Self.comesBackWithoutRerunning(c, runID)
            }
        }
    }

    @Test func agentCutOffFromTheDatabaseStopsItsRunAndDoesNotRunItAgain() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let port = try #require(Int(try c.query("SHOW port").scalar(String.self)))
            let user = try c.query("SELECT current_user::text").scalar(String.self)
            let proxy = try TCPProxy(upstreamPort: port)
            defer { proxy.close() }
            let url = "host=127.0.0.1 port=\(proxy.port) user=\(user) dbname=\(db.name)"
            try await Self.scenario(db, firstURL: url) { _ in
                proxy.cut()
            } afterRetry: { _, c, runID in
                proxy.restore()
                try await Self.comesBackWithoutRerunning(c, runID)
            }
        }
    }
}
